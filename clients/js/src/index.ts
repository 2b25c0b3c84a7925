/**
 * @distspace/client: the Dist-Space local API from TypeScript (Node >= 18, or a browser over the
 * WebSocket), and {@link EditorDocument}, an editor buffer kept in step with a file in a space.
 */

export { Client, connect, defaultHome } from "./client.js";
export type { ConnectOptions, MethodName, NotificationName, Params, Result } from "./client.js";
export {
  DaemonRequiredError,
  DisconnectedError,
  DistspaceError,
  ErrorCode,
  InternalError,
  InvalidParamsError,
  MethodNotFoundError,
  RpcError,
  StoreError,
  UnauthorizedError,
} from "./errors.js";
export { EditorDocument, EditRejectedError, ENCODING } from "./editor.js";
export type { OpenOptions, RemoteChange, TextEdit, UndoResult } from "./editor.js";
export { applyPatches, PendingEdits, transformPosition } from "./pending_edits.js";
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export type * from "./generated/api.js";
