// Headless Chromium follows a live migration on the dev-mode /demo page: two pages join a
// meeting on MC-A, print "ready", and once MC-A hands the meeting over (the caller
// SIGTERMs it) each page must follow RedirectToMc to the expected MC and recover there
// with the same participant id and the same roster, show the "moved to" line, see no
// leave, and a mute on one page must reach the other through the new MC.
//
//   node demo_redirect.mjs --admin http://127.0.0.1:8080 --expect https://127.0.0.1:4434
//
// CHROMIUM (default /usr/bin/chromium; never downloaded), MC_NETLOG (net-log path),
// MC_SCREENSHOT (a PNG of alice's page after the move).
import { arg, chromiumPath, joinDemo, launch } from './chromium.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const admin = arg('admin', 'MC_ADMIN_URL', 'http://127.0.0.1:8080');
const expect = arg('expect', 'MC_EXPECT_ENDPOINT', null);
const executablePath = chromiumPath();
const netlog = arg('netlog', 'MC_NETLOG', path.join(os.tmpdir(), `mc-demo-redirect-netlog-${process.pid}.json`));
const screenshot = arg('screenshot', 'MC_SCREENSHOT', null);
const meeting = `browser-move-${process.pid}`;
if (!expect) {
  console.error('--expect https://host:port (the MC the meeting moves to) is required');
  process.exit(2);
}

let browser;
let code = 1;
try {
  browser = await launch(executablePath, netlog);
  const { context } = browser;
  const join = (name, role) => joinDemo(context, admin, meeting, name, role);
  const alice = await join('alice', 'host');
  const bob = await join('bob', 'participant');
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => Object.keys(window.demoState.participants).length === 2, null, { timeout: 10000 });
  }
  // Bob mutes his audio on MC-A: the state the move must keep.
  const bobId = await bob.evaluate(() => window.demoState.participantId);
  await bob.click('#mute-audio');
  await alice.waitForFunction((id) => window.demoState.participants[id]?.audio === true, bobId, { timeout: 10000 });
  // Each page fetches a spare token once joined: MC-A will be gone when it is needed.
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => window.demoState.spareToken, null, { timeout: 5000 });
  }
  const before = {};
  for (const [name, p] of [['alice', alice], ['bob', bob]]) {
    before[name] = await p.evaluate(() => ({
      id: window.demoState.participantId,
      url: window.demoState.webtransportUrl,
      roster: Object.keys(window.demoState.participants).sort(),
      events: window.demoState.events.length,
    }));
  }
  console.log(`joined on MC-A: ${JSON.stringify(before)}`);
  console.log('ready');

  // The caller drains MC-A now; both pages must end up on the expected MC.
  const target = new URL(expect).origin;
  for (const [name, p] of [['alice', alice], ['bob', bob]]) {
    await p.waitForFunction(
      (to) => window.demoState.moves.length > 0 && !window.demoState.moving && window.demoState.joined
        && new URL(window.demoState.webtransportUrl).origin === to,
      target,
      { timeout: 30000 },
    ).catch(async (e) => {
      const st = await p.evaluate(() => window.demoState);
      throw new Error(`${name} did not move: ${e}\n${JSON.stringify(st.events, null, 1)}\nerrors ${JSON.stringify(st.errors)}`);
    });
    const st = await p.evaluate(() => ({
      id: window.demoState.participantId,
      url: window.demoState.webtransportUrl,
      roster: Object.keys(window.demoState.participants).sort(),
      moves: window.demoState.moves,
      errors: window.demoState.errors,
      events: window.demoState.events,
      line: document.getElementById('moved').textContent,
    }));
    const problems = [];
    if (st.id !== before[name].id) problems.push(`participant id ${before[name].id} -> ${st.id}`);
    if (JSON.stringify(st.roster) !== JSON.stringify(before[name].roster)) problems.push(`roster ${before[name].roster} -> ${st.roster}`);
    if (st.moves.length !== 1 || new URL(st.moves[0].to).origin !== target) problems.push(`moves ${JSON.stringify(st.moves)}`);
    if (st.errors.length) problems.push(`errors ${JSON.stringify(st.errors)}`);
    const since = st.events.slice(before[name].events);
    if (since.some((e) => / left \(reason/.test(e) || / joined$/.test(e))) problems.push('saw a leave or a join');
    if (!st.line.includes(st.moves[0]?.to ?? '?')) problems.push(`"moved to" line: ${st.line}`);
    if (problems.length) throw new Error(`${name}: ${problems.join('; ')}\n${JSON.stringify(since, null, 1)}`);
    console.log(`${name} moved to ${st.url} in ${st.moves[0].ms} ms, still ${st.id}, roster kept`);
  }
  // The mute state moved with the meeting, and updates flow through the new MC.
  await alice.waitForFunction((id) => window.demoState.participants[id]?.audio === true, bobId, { timeout: 10000 });
  await bob.click('#mute-audio');
  await alice.waitForFunction((id) => window.demoState.participants[id]?.audio === false, bobId, { timeout: 10000 });
  console.log('alice saw bob unmute through the new MC');
  if (screenshot) await alice.screenshot({ path: screenshot, fullPage: true });
  code = 0;
} catch (e) {
  console.error('demo redirect test failed:', e);
  console.error(`net-log: ${netlog}`);
} finally {
  if (browser) await browser.close();
}
// The net log is kept only when it can explain a failure.
if (code === 0) fs.rmSync(netlog, { force: true });
process.exit(code);
