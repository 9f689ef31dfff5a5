// Headless Chromium against a WebTransport /echo endpoint.
//
//   node echo.mjs --url https://127.0.0.1:4433/echo --cert-hash <hex sha-256>
//   node echo.mjs --url ... --cert-hash-file .mc-dev/cert.sha256 --sessions 16
//
// Env equivalents: MC_WT_URL, MC_CERT_SHA256, MC_CERT_SHA256_FILE, MC_BROWSER_SESSIONS,
// CHROMIUM (default /usr/bin/chromium; never downloaded), MC_NETLOG (net-log path).
// Serves a blank page from http://127.0.0.1:<port>/ (a secure context), opens one
// session (bidi echo + datagram echo + close), then N concurrent sessions the same way.
// Exits non-zero on any failure.
import { arg, chromiumPath, launch } from './chromium.mjs';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const url = arg('url', 'MC_WT_URL', 'https://127.0.0.1:4433/echo');
let hash = arg('cert-hash', 'MC_CERT_SHA256', '');
const hashFile = arg('cert-hash-file', 'MC_CERT_SHA256_FILE', '');
if (!hash && hashFile) hash = fs.readFileSync(hashFile, 'utf8');
hash = hash.trim().toLowerCase();
const sessions = Number(arg('sessions', 'MC_BROWSER_SESSIONS', '16'));
const executablePath = chromiumPath();
const netlog = arg('netlog', 'MC_NETLOG', path.join(os.tmpdir(), `mc-netlog-${process.pid}.json`));

if (!/^[0-9a-f]{64}$/.test(hash)) {
  console.error('need --cert-hash <64 hex chars> (or --cert-hash-file, MC_CERT_SHA256)');
  process.exit(2);
}

const page_server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>mc-service echo</title>');
});
await new Promise((r) => page_server.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${page_server.address().port}/`;

let browser;
let code = 1;
try {
  browser = await launch(executablePath, netlog);
  const { context } = browser;
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  await page.goto(pageUrl);
  const result = await page.evaluate(async ({ url, hash, sessions }) => {
    const value = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    const withTimeout = (p, ms, what) =>
      Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out`)), ms))]);
    async function one(i) {
      const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value }] });
      await withTimeout(wt.ready, 15000, `session ${i} ready`);
      const s = await wt.createBidirectionalStream();
      const w = s.writable.getWriter();
      const msg = `hello from session ${i}`;
      await w.write(enc.encode(msg));
      await w.close();
      const r = s.readable.getReader();
      const parts = [];
      for (;;) {
        const { value: chunk, done } = await withTimeout(r.read(), 10000, `session ${i} stream read`);
        if (done) break;
        parts.push(...chunk);
      }
      const got = dec.decode(new Uint8Array(parts));
      if (got !== msg) throw new Error(`session ${i}: stream echo mismatch: ${got}`);
      const dw = wt.datagrams.writable.getWriter();
      const dr = wt.datagrams.readable.getReader();
      let pending = null;
      let ok = false;
      for (let k = 0; k < 40 && !ok; k++) {
        await dw.write(enc.encode(`datagram ${i}`));
        if (!pending) pending = dr.read();
        const res = await Promise.race([pending, new Promise((r) => setTimeout(() => r(null), 250))]);
        if (res) {
          pending = null;
          if (!res.done && dec.decode(res.value) === `datagram ${i}`) ok = true;
        }
      }
      if (!ok) throw new Error(`session ${i}: no datagram echo`);
      wt.close({ closeCode: 0, reason: 'done' });
      await withTimeout(wt.closed, 10000, `session ${i} close`);
    }
    const errors = [];
    try {
      await one(0);
    } catch (e) {
      return { errors: [`first session: ${e}`] };
    }
    const results = await Promise.allSettled(Array.from({ length: sessions }, (_, i) => one(i + 1)));
    for (const r of results) if (r.status === 'rejected') errors.push(String(r.reason));
    return { errors };
  }, { url, hash, sessions });
  if (result.errors.length === 0) {
    console.log(`OK: 1 + ${sessions} WebTransport sessions echoed a bidi stream and a datagram via ${url}`);
    code = 0;
  } else {
    console.error(`FAILED (${result.errors.length}):\n  ${result.errors.join('\n  ')}`);
  }
} catch (e) {
  console.error(`FAILED: ${e}`);
} finally {
  if (browser) await browser.close();
  page_server.close();
}
if (code !== 0) {
  console.error(`hint: Chromium only says "Opening handshake failed."; the real cause is in the net log: ${netlog}`);
} else {
  fs.rmSync(netlog, { force: true });
}
process.exit(code);
