import { existsSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";

/** Flags for headless Chromium on a machine with no network but loopback. */
const ARGS = [
  "--no-sandbox",
  "--no-zygote",
  "--disable-gpu",
  "--use-angle=swiftshader",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * The Chromium the browser tests drive: `CHROMIUM_PATH` when set, else the
 * system's (Debian's /usr/bin/chromium), else the one shipped inside the
 * `@sparticuz/chromium` npm package, so `npm install && npm test` needs no
 * browser on the machine. playwright-core downloads none of its own.
 */
export async function chromiumPath(env = process.env): Promise<string> {
  if (env.CHROMIUM_PATH) return env.CHROMIUM_PATH;
  if (existsSync("/usr/bin/chromium")) return "/usr/bin/chromium";
  const { default: packaged } = await import("@sparticuz/chromium");
  return packaged.executablePath();
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: await chromiumPath(), args: ARGS });
}

/**
 * A page whose waits give up after 90 s rather than Playwright's 30: a bound
 * on a hang, which a loaded machine's slow refresh must not reach.
 */
export async function openPage(
  browser: Browser,
  viewport: { width: number; height: number },
): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(90_000);
  return page;
}
