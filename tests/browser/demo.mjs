// Headless Chromium joins a meeting through the dev-mode /demo page: two pages join the same meeting over WebTransport, each sees the other
// in its roster, and a mute on one page shows on the other.
//
//   node demo.mjs --admin http://127.0.0.1:8080
//
// CHROMIUM (default /usr/bin/chromium; never downloaded), MC_NETLOG (net-log path).
import { arg, chromiumPath, joinDemo, launch } from './chromium.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const admin = arg('admin', 'MC_ADMIN_URL', 'http://127.0.0.1:8080');
const executablePath = chromiumPath();
const netlog = arg('netlog', 'MC_NETLOG', path.join(os.tmpdir(), `mc-demo-netlog-${process.pid}.json`));
const meeting = `browser-demo-${process.pid}`;

let browser;
let code = 1;
try {
  browser = await launch(executablePath, netlog);
  const { context } = browser;
  const join = (name, role) => joinDemo(context, admin, meeting, name, role);
  const alice = await join('alice', 'host');
  const bob = await join('bob', 'participant');
  const rosterOf = (p) => p.evaluate(() => Object.values(window.demoState.participants).map((x) => x.name || x.id));
  await alice.waitForFunction(() => Object.keys(window.demoState.participants).length === 2, null, { timeout: 10000 });
  await bob.waitForFunction(() => Object.keys(window.demoState.participants).length === 2, null, { timeout: 10000 });
  console.log('alice sees', await rosterOf(alice), '; bob sees', await rosterOf(bob));

  const bobId = await bob.evaluate(() => window.demoState.participantId);
  await bob.click('#mute-audio');
  await alice.waitForFunction((id) => window.demoState.participants[id]?.audio === true, bobId, { timeout: 10000 });
  console.log('alice saw bob mute his audio');

  // Bob leaves cleanly: alice's roster shrinks.
  await bob.click('#leave');
  await alice.waitForFunction(() => Object.keys(window.demoState.participants).length === 1, null, { timeout: 10000 });
  console.log('alice saw bob leave');
  code = 0;
} catch (e) {
  console.error('demo test failed:', e);
  console.error(`net-log: ${netlog}`);
} finally {
  if (browser) await browser.close();
}
// The net log is kept only when it can explain a failure.
if (code === 0) fs.rmSync(netlog, { force: true });
process.exit(code);
