// Password input as etcdctl's (speakeasy): read from the terminal with echo off, one line, nothing beyond it.
import { spawnSync } from 'node:child_process';
import { out } from './context';

/** Reads stdin one byte at a time up to a newline or EOF (speakeasy's readline: nothing beyond the line is consumed). */
export async function readLine(): Promise<string> {
  const stdin = process.stdin;
  const bytes: number[] = [];
  await new Promise<void>((resolve) => {
    const finish = () => {
      stdin.off('readable', onReadable);
      stdin.off('end', finish);
      stdin.off('error', finish);
      resolve();
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = stdin.read(1) as Buffer | null) !== null) {
        if (chunk[0] === 0x0a) return finish();
        bytes.push(chunk[0]);
      }
    };
    stdin.on('readable', onReadable);
    stdin.once('end', finish);
    stdin.once('error', finish);
  });
  return Buffer.from(bytes).toString().replace(/\r$/, '');
}

/** speakeasy.Ask as etcdctl uses it: prompt on stdout, `stty -echo` around the read, a newline after it. */
export async function askPassword(prompt: string): Promise<string> {
  out(prompt);
  spawnSync('stty', ['-echo'], { stdio: 'inherit' });
  const line = await readLine();
  spawnSync('stty', ['echo'], { stdio: 'inherit' });
  out('\n');
  return line;
}

