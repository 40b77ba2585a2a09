// Preload for the spector mock server (node --import): spector has no host option and would
// listen on every interface; the tests' rule is loopback only, so force host 127.0.0.1.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || typeof args[0] === "string") {
    // listen(port[, host][, backlog][, callback]): drop a given host, put ours in its place.
    const port = args.shift();
    if (typeof args[0] === "string") args.shift();
    return listen.call(this, port, "127.0.0.1", ...args);
  }
  if (args[0] !== null && typeof args[0] === "object" && args[0].path === undefined) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.call(this, ...args);
};
