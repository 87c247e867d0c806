// What every command gets: resolved global flags, one lazily opened client, the printer, stdin.
import { ClientError, type RemoteClient } from '@nestcd/client';
import { Command } from 'commander';
import { CtlError, errorText, ExitCode, logTarget, openClient, resolveGlobals, userCredentials, type GlobalOptions, type RawGlobals } from './context';
import { askPassword } from './password';
import { Printer } from './printers';

export class Cli {
  private client_?: RemoteClient;
  private globals_?: GlobalOptions;
  /** Clients opened for single endpoints (endpoint status, health ...), closed at exit. */
  private readonly extra: RemoteClient[] = [];

  constructor(readonly program: Command) {}

  get globals(): GlobalOptions {
    this.globals_ ??= resolveGlobals(this.program.opts() as RawGlobals);
    logTarget.endpoint = this.globals_.endpoints[0];
    return this.globals_;
  }

  get client(): RemoteClient {
    this.client_ ??= openClient(this.globals);
    return this.client_;
  }

  /**
   * Authenticates with --user as clientv3.New does while connecting: refused credentials end the command with
   * ExitBadConnection; a server without auth refuses the call (logged) and the command runs without a token.
   */
  async login(): Promise<void> {
    const g = this.globals;
    if (!g.user) return;
    // `--user NAME` alone: etcdctl asks for the password on the terminal.
    if (!g.password && !g.user.includes(':')) g.password = await askPassword('Password: ');
    const creds = userCredentials(g);
    if (!creds?.user || !creds.password) return;
    const anonymous = openClient({ ...g, user: undefined, password: undefined });
    this.extra.push(anonymous);
    try {
      await anonymous.authenticate(creds.user, creds.password);
    } catch (err) {
      const text = errorText(err);
      if (err instanceof ClientError && err.message === AUTH_NOT_ENABLED) {
        this.client_ ??= anonymous;
        return;
      }
      throw new CtlError(ExitCode.BadConnection, text);
    }
  }

  /** A client bound to one endpoint (etcdctl opens one per endpoint for maintenance commands). */
  clientFor(endpoint: string): RemoteClient {
    const c = openClient(this.globals, [endpoint]);
    this.extra.push(c);
    return c;
  }

  printer(valueOnly = false): Printer {
    return new Printer(this.globals.writeOut, this.globals.hex, valueOnly);
  }

  /** set once the command is over: watch/keep-alive errors caused by closing the client are not reported. */
  closing = false;

  async close(): Promise<void> {
    this.closing = true;
    const all = [this.client_, ...this.extra].filter((c): c is RemoteClient => !!c);
    await Promise.race([Promise.allSettled(all.map((c) => c.close())), new Promise((r) => setTimeout(r, 500).unref())]);
  }
}

const AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';

export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Line reader over stdin that returns null at EOF (a line without a final newline counts as EOF, as bufio's ReadString). */
export class StdinLines {
  private buf = '';
  private ended = false;
  private waiters: (() => void)[] = [];

  constructor(stream: NodeJS.ReadableStream = process.stdin) {
    stream.setEncoding?.('utf8');
    stream.on('data', (d: string | Buffer) => {
      this.buf += d.toString();
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  async next(): Promise<string | null> {
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const line = this.buf.slice(0, i + 1);
        this.buf = this.buf.slice(i + 1);
        return line;
      }
      if (this.ended) return null;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

/** Go's strings.Fields-like split honouring double quotes, as etcdctl's Argify. */
export function argify(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    if (m[1] !== undefined) {
      try {
        out.push(JSON.parse(`"${m[1]}"`));
      } catch {
        out.push(m[1]);
      }
    } else out.push(m[2]);
  }
  return out;
}
