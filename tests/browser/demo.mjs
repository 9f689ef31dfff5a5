// Headless Chromium joins a meeting through the dev-mode /demo page: two pages join the same meeting over WebTransport, each sees the other
// in its roster, and a mute on one page shows on the other.
//
//   node demo.mjs --admin http://127.0.0.1:8080
//
// CHROMIUM (default /usr/bin/chromium; never downloaded), MC_NETLOG (net-log path).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function arg(name, envName, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (envName && process.env[envName]) return process.env[envName];
  return fallback;
}

const admin = arg('admin', 'MC_ADMIN_URL', 'http://127.0.0.1:8080');
const executablePath = arg('chromium', 'CHROMIUM', '/usr/bin/chromium');
const netlog = arg('netlog', 'MC_NETLOG', path.join(os.tmpdir(), `mc-demo-netlog-${process.pid}.json`));
const meeting = `browser-demo-${process.pid}`;
if (!fs.existsSync(executablePath)) {
  console.error(`chromium not found at ${executablePath} (apt-get install -y chromium; never download a browser)`);
  process.exit(2);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-chromium-demo-'));
let context;
let code = 1;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      `--log-net-log=${netlog}`,
    ],
  });
  const join = async (name, role) => {
    const page = await context.newPage();
    page.on('console', (m) => console.log(`[${name}] ${m.text()}`));
    await page.goto(`${admin}/demo`);
    await page.fill('#meeting', meeting);
    await page.fill('#name', name);
    await page.selectOption('#role', role);
    await page.click('#join');
    await page.waitForFunction(() => window.demoState.joined || window.demoState.errors.length > 0, null, { timeout: 15000 });
    const st = await page.evaluate(() => window.demoState);
    if (!st.joined) throw new Error(`${name} did not join: ${JSON.stringify(st.errors)} ${JSON.stringify(st.events)}`);
    return page;
  };
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
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
