/**
 * The errors of the client: what the daemon answered ({@link RpcError} and its kinds, carrying the
 * JSON-RPC code and the error's name from `data.error`), and a connection that is gone
 * ({@link DisconnectedError}). The codes are node/rpc.py's.
 */

/** The JSON-RPC error codes of the Dist-Space API (node/rpc.py). */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  Unauthorized: -32001,
  DaemonRequired: -32002,
  /** 1000-1099: the workspace and store refused the call; nothing was changed. */
  StoreFirst: 1000,
  StoreLast: 1099,
} as const;

/** Every error this package throws. */
export class DistspaceError extends Error {
  override name = "DistspaceError";
}

/** The connection to the daemon could not be made, or broke, or was closed. */
export class DisconnectedError extends DistspaceError {
  override name = "DisconnectedError";
}

/** An error the daemon answered: `code` to switch on, `errorName` (data.error) to name it. */
export class RpcError extends DistspaceError {
  override name = "RpcError";
  readonly code: number;
  /** The daemon's name of the error: "NotFound", "InvalidParams", "Unauthorized"... */
  readonly errorName: string;
  /** The error object's `data` member as sent (it holds `error`, and may hold more). */
  readonly data: Record<string, unknown>;

  constructor(code: number, message: string, errorName: string, data: Record<string, unknown> = { error: errorName }) {
    super(message);
    this.code = code;
    this.errorName = errorName;
    this.data = data;
  }
}

/** -32001: no token, a wrong one, or a first call that was not auth; the daemon closes the connection. */
export class UnauthorizedError extends RpcError {
  override name = "UnauthorizedError";
}

/** -32602: a param is missing, of the wrong type, or out of range; the message names it. */
export class InvalidParamsError extends RpcError {
  override name = "InvalidParamsError";
}

/** -32601: the daemon has no such method. */
export class MethodNotFoundError extends RpcError {
  override name = "MethodNotFoundError";
}

/** -32002: the method needs a running daemon (subscriptions, presence). */
export class DaemonRequiredError extends RpcError {
  override name = "DaemonRequiredError";
}

/** 1000-1099: the store refused the call (NotFound, AlreadyExists, UnknownBase...); nothing changed. */
export class StoreError extends RpcError {
  override name = "StoreError";
}

/** -32603: a bug in the daemon; its log has the details. */
export class InternalError extends RpcError {
  override name = "InternalError";
}

/** The typed error a reply's `error` member describes, tolerating a server that sends less. */
export function rpcErrorFrom(error: unknown): RpcError {
  if (typeof error !== "object" || error === null) {
    return new RpcError(ErrorCode.InternalError, `malformed error object: ${JSON.stringify(error)}`, "MalformedReply");
  }
  const fields = error as { code?: unknown; message?: unknown; data?: unknown };
  const data = typeof fields.data === "object" && fields.data !== null ? (fields.data as Record<string, unknown>) : {};
  const code = typeof fields.code === "number" && Number.isInteger(fields.code) ? fields.code : ErrorCode.InternalError;
  const message = typeof fields.message === "string" ? fields.message : "unknown error";
  const errorName = typeof data.error === "string" ? data.error : "Error";
  return new (errorClass(code))(code, message, errorName, { ...data, error: errorName });
}

function errorClass(code: number): typeof RpcError {
  switch (code) {
    case ErrorCode.Unauthorized:
      return UnauthorizedError;
    case ErrorCode.InvalidParams:
      return InvalidParamsError;
    case ErrorCode.MethodNotFound:
      return MethodNotFoundError;
    case ErrorCode.DaemonRequired:
      return DaemonRequiredError;
    case ErrorCode.InternalError:
      return InternalError;
    default:
      return code >= ErrorCode.StoreFirst && code <= ErrorCode.StoreLast ? StoreError : RpcError;
  }
}
