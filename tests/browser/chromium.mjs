// What every browser test script shares: its arguments, Debian's Chromium started the
// way the project starts it (headless, fresh profile, no network beyond 127.0.0.1, a
// net log for diagnosis), and a participant joining through the dev-mode /demo page.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// `--name value`, else the environment variable, else the fallback.
export function arg(name, envName, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (envName && process.env[envName]) return process.env[envName];
  return fallback;
}

// The Chromium binary (`--chromium` or CHROMIUM, default Debian's); exits 2 when missing.
export function chromiumPath() {
  const executablePath = arg('chromium', 'CHROMIUM', '/usr/bin/chromium');
  if (!fs.existsSync(executablePath)) {
    console.error(`chromium not found at ${executablePath} (apt-get install -y chromium; never download a browser)`);
    process.exit(2);
  }
  return executablePath;
}

// Chromium on a fresh profile writing its net log to `netlog`. `close()` ends it and
// removes the profile.
export async function launch(executablePath, netlog) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        `--log-net-log=${netlog}`,
      ],
    });
    const close = async () => {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    };
    return { context, close };
  } catch (e) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
}

// A new page that joins `meeting` as `name` with `role` on the /demo page of `admin`;
// throws with the page's errors when the join does not complete.
export async function joinDemo(context, admin, meeting, name, role) {
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
}
