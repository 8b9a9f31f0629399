// A TCP proxy between a client and Postgres that a test can cut: all at once, or at the moment a
// chosen statement passes — before Postgres sees it, or after it ran but before the answer returns.
import net from "node:net";

export interface FaultProxy {
  port: number;
  /** Cut every open connection now. */
  cutAll(): void;
  /**
   * The next time a message containing `marker` goes to Postgres, cut that connection: "before"
   * drops the message (Postgres never runs it), "after" delivers it and drops the answer.
   */
  cutOn(marker: string, when: "before" | "after"): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  let trap: { marker: string; when: "before" | "after"; sprung: () => void } | undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let doomed = false;
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk) => {
      if (trap && chunk.includes(trap.marker)) {
        const t = trap;
        trap = undefined;
        if (t.when === "before") {
          kill();
          t.sprung();
          return;
        }
        doomed = true; // deliver, then drop the connection when the answer starts coming back
        upstream.write(chunk);
        upstream.once("data", () => {
          kill();
          t.sprung();
        });
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!doomed) client.write(chunk);
    });
    const cleanup = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      kill();
    };
    client.on("close", cleanup);
    upstream.on("close", cleanup);
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    cutAll: () => {
      for (const s of sockets) s.destroy();
    },
    cutOn: (marker, when) => new Promise((sprung) => (trap = { marker, when, sprung })),
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
