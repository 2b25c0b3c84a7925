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
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export type * from "./generated/api.js";
