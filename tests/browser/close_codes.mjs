// Headless Chromium reads the session close codes of mc-service's signaling (signaling
// protocol rule 5): a join with a bad token must end with closeCode 0x101, a join over
// the meeting's participant limit with 0x102, a drained session with 0x103 —
// `await transport.closed` resolves with {closeCode}; it must not reject.
//
//   node close_codes.mjs --url https://127.0.0.1:<port>/ --cert-hash <hex>
//        --drain-url https://127.0.0.1:<port>/ --drain-cert-hash <hex>
//        --bad <hex frame> --cap-a <hex frame> --cap-b <hex frame> --drain <hex frame>
//
// The frames are whole signaling frames (4-byte length + ClientMessage), built by the
// Rust test. `--url` is a server started with --max-participants-per-meeting 1 and
// --cap-a/--cap-b are joins of two users to one meeting; `--drain-url` is a server the
// caller sends SIGTERM to when this script prints the line DRAIN-READY (the --drain
// join has been answered then). CHROMIUM (default /usr/bin/chromium; never downloaded),
// MC_NETLOG (net-log path). Prints one JSON line per case; exits non-zero on any
// mismatch.
import { arg, chromiumPath, launch } from './chromium.mjs';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const opts = {
  url: arg('url'),
  hash: (arg('cert-hash') ?? '').trim().toLowerCase(),
  drainUrl: arg('drain-url'),
  drainHash: (arg('drain-cert-hash') ?? '').trim().toLowerCase(),
  bad: arg('bad'),
  capA: arg('cap-a'),
  capB: arg('cap-b'),
  drain: arg('drain'),
};
for (const [k, v] of Object.entries(opts)) {
  if (!v) {
    console.error(`missing --${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
    process.exit(2);
  }
}
for (const h of [opts.hash, opts.drainHash]) {
  if (!/^[0-9a-f]{64}$/.test(h)) {
    console.error('certificate hashes must be 64 hex chars');
    process.exit(2);
  }
}
const executablePath = chromiumPath();
const netlog = arg('netlog', 'MC_NETLOG', path.join(os.tmpdir(), `mc-netlog-close-${process.pid}.json`));

const pageServer = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>mc-service close codes</title>');
});
await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${pageServer.address().port}/`;

let browser;
let code = 1;
try {
  browser = await launch(executablePath, netlog);
  const { context } = browser;
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  await page.exposeFunction('drainReady', () => console.log('DRAIN-READY'));
  await page.goto(pageUrl);
  const results = await page.evaluate(async (o) => {
    const bytes = (hex) => new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
    const withTimeout = (p, ms, what) =>
      Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms))]);
    // Open a session, send `frame` on its signaling stream, keep reading that stream.
    async function open(url, hash, frame, name) {
      const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: bytes(hash) }] });
      wt.closed.catch(() => {});
      await withTimeout(wt.ready, 10000, `${name}: ready`);
      const s = await wt.createBidirectionalStream();
      const w = s.writable.getWriter();
      await w.write(bytes(frame));
      const r = s.readable.getReader();
      const firstReply = r.read();
      firstReply.catch(() => {});
      (async () => { try { for (;;) { const { done } = await r.read(); if (done) break; } } catch (_) {} })();
      return { wt, firstReply };
    }
    // How the session ended: {closeCode, reason} or the rejection.
    async function ending(wt, ms) {
      try {
        const info = await withTimeout(wt.closed, ms, 'transport.closed');
        return { closeCode: info.closeCode, reason: info.reason };
      } catch (e) {
        return { rejected: String(e) };
      }
    }
    const results = [];
    async function run(name, expected, body) {
      try {
        results.push({ name, expected, got: await body() });
      } catch (e) {
        results.push({ name, expected, got: { error: String(e) } });
      }
    }
    await run('bad token', 0x101, async () => {
      const { wt } = await open(o.url, o.hash, o.bad, 'bad token');
      return ending(wt, 10000);
    });
    await run('over capacity', 0x102, async () => {
      const a = await open(o.url, o.hash, o.capA, 'first participant');
      await withTimeout(a.firstReply, 10000, 'first participant join response');
      const b = await open(o.url, o.hash, o.capB, 'second participant');
      const got = await ending(b.wt, 10000);
      a.wt.close({ closeCode: 0, reason: 'done' });
      return got;
    });
    await run('drained', 0x103, async () => {
      const c = await open(o.drainUrl, o.drainHash, o.drain, 'drained participant');
      await withTimeout(c.firstReply, 10000, 'drained participant join response');
      await window.drainReady();
      return ending(c.wt, 20000);
    });
    return results;
  }, opts);
  let failed = 0;
  for (const r of results) {
    const ok = r.got.closeCode === r.expected;
    if (!ok) failed++;
    console.log(JSON.stringify({ ...r, expected: `0x${r.expected.toString(16)}`, ok }));
  }
  code = failed === 0 ? 0 : 1;
  if (failed) console.error(`FAILED: ${failed} of ${results.length} cases`);
} catch (e) {
  console.error(`FAILED: ${e}`);
} finally {
  if (browser) await browser.close();
  pageServer.close();
}
if (code !== 0) {
  console.error(`net log: ${netlog}`);
} else {
  fs.rmSync(netlog, { force: true });
}
process.exit(code);
