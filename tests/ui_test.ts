/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`),
 * over a real server started through the `./dfs` launcher (its narrowed permissions) with a
 * token: log in, see the nodes, upload by the file input and by drag and drop (into a folder),
 * see the files listed, download one, delete it, and check each step with the CLI. Writes screenshots (desktop and a 375 px phone) to
 * `$DFS_SCREENSHOT_DIR`, default `test-output/` in the checkout, and prints their paths.
 * Skipped, with a message, where chromium is not installed.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { chromium } from "playwright-core";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { dfs } from "./_cli.ts";
import { ROOT, TestServer } from "./_server.ts";

const TOKEN = "ui-browser-test-token-0123456789";
/** The page's actions and waits, at most (the whole test takes a few seconds). */
const PAGE_TIMEOUT_MS = 15_000;

/** The first of `names` on the PATH (or `$DFS_CHROMIUM`), if any. */
async function findExecutable(names: string[]): Promise<string | undefined> {
  const given = Deno.env.get("DFS_CHROMIUM");
  if (given) return given;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "")) {
    for (const name of names) {
      const info = await Deno.stat(`${dir}/${name}`).catch(() => undefined);
      if (info?.isFile && (info.mode ?? 0o111) & 0o111) return `${dir}/${name}`;
    }
  }
  return undefined;
}

const browserPath = await findExecutable(["chromium", "chromium-browser"]);
if (!browserPath) {
  console.log(
    "Skipping the dashboard browser test: chromium is not installed " +
      "(apt-get install chromium, or set DFS_CHROMIUM)",
  );
}

Deno.test({
  name: "the dashboard in Chromium: log in, see the nodes, upload, list, download, delete",
  ignore: !browserPath,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dfs-ui-browser-" });
    const shots = Deno.env.get("DFS_SCREENSHOT_DIR") || `${ROOT}test-output`;
    await Deno.mkdir(shots, { recursive: true });
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, `${TOKEN}\n`);
    await using server = await TestServer.start({
      launcher: true,
      extraArgs: ["--token-file", tokenFile, "--ui-port", "0"],
    });
    const ui = /; ui on ([\d.]+:\d+)/.exec(server.readyLine)?.[1];
    assert.ok(ui, `the ready line names the dashboard: ${server.readyLine}`);
    const cli = (...args: string[]) =>
      dfs([...args, "--server", server.address, "--token-file", tokenFile]);

    const browser = await chromium.launch({
      executablePath: browserPath,
      // As root (in CI), Chromium runs only without its sandbox.
      args: Deno.uid() === 0 ? ["--no-sandbox"] : [],
    });
    try {
      const context = await browser.newContext({
        viewport: { width: 1280, height: 900 },
        acceptDownloads: true,
      });
      const page = await context.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console: ${message.text()}`);
      });

      // Before the login: a form, and no data from the API.
      await page.goto(`http://${ui}/`);
      await page.waitForSelector("#login-form", { state: "visible" });
      assert.equal(await page.isHidden("#app"), true, "nothing but the login form shows");
      assert.equal(await page.evaluate(() => fetch("/api/status").then((r) => r.status)), 401);
      await page.fill("#token", "a-wrong-token-of-some-length");
      await page.click("#login-form button[type=submit]");
      // Waits go through locators: the page's content policy forbids the eval of waitForFunction.
      await page.locator("#login-error", { hasText: "The token is not the server's" }).waitFor();
      problems.length = 0; // the browser logs the refused login's 401 as an error

      await page.fill("#token", TOKEN);
      await page.click("#login-form button[type=submit]");
      await page.waitForSelector("#app", { state: "visible" });
      await page.locator("#nodes tbody tr[data-rank]").nth(2).waitFor();
      const states = await page.locator("#nodes tbody tr .state").allTextContents();
      assert.deepEqual(states, ["up", "up", "up"]);

      // Upload by the file input: 1.5 MiB, two chunks.
      const data = pseudoRandomBytes(1536 * 1024, 14);
      await page.setInputFiles("#file-input", {
        name: "ui-test.bin",
        mimeType: "application/octet-stream",
        buffer: Buffer.from(data),
      });
      await page.waitForSelector('#uploads li[data-upload="ui-test.bin"].done');
      await page.waitForSelector('#files tr[data-name="ui-test.bin"]');
      const row = await page.textContent('#files tr[data-name="ui-test.bin"]');
      assert.match(row!, /ui-test\.bin/);
      assert.match(row!, /1\.5 MiB/);
      const meta = JSON.parse((await cli("meta", "ui-test.bin", "--json")).stdout);
      assert.equal(meta.sha256, sha256(data), "the CLI sees the uploaded bytes");

      // Download by the link.
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click('#files tr[data-name="ui-test.bin"] a'),
      ]);
      assert.equal(download.suggestedFilename(), "ui-test.bin");
      const downloaded = await Deno.readFile((await download.path())!);
      assert.equal(sha256(downloaded), sha256(data), "the download holds the uploaded bytes");

      // Upload by drag and drop into a folder, then find it through the folders.
      await page.evaluate("location.hash = encodeURIComponent('photos/')");
      await page.locator("#drop-target", { hasText: "photos/" }).waitFor();
      await page.evaluate(`(() => {
        const files = new DataTransfer();
        files.items.add(new File(["dropped bytes"], "dropped.txt"));
        const drop = new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true });
        document.getElementById("drop").dispatchEvent(drop);
      })()`);
      await page.waitForSelector('#files tr[data-name="photos/dropped.txt"]');
      const dropped = await cli("get", "photos/dropped.txt", "-");
      assert.equal(dropped.stdout, "dropped bytes", "the CLI reads the dropped file");
      await page.click("#crumbs button >> text=All files");
      await page.click('#files tr[data-folder="photos/"] button');
      await page.waitForSelector('#files tr[data-name="photos/dropped.txt"]');
      await page.click("#crumbs button >> text=All files");
      await page.waitForSelector('#files tr[data-name="ui-test.bin"]');

      // The throughput chart saw the uploads and the download, then screenshots.
      for (
        let tries = 0;
        /^0 read, 0 written/.test(await page.textContent("#mbs-now") ?? "");
        tries++
      ) {
        assert.ok(tries < PAGE_TIMEOUT_MS / 100, "the throughput chart shows the transfers");
        await page.waitForTimeout(100);
      }
      const desktop = `${shots}/dashboard-desktop.png`;
      await page.screenshot({ path: desktop, fullPage: true });
      await page.setViewportSize({ width: 375, height: 812 });
      await page.waitForTimeout(200); // the charts redraw on resize
      const phone = `${shots}/dashboard-phone.png`;
      await page.screenshot({ path: phone, fullPage: true });
      const wide = await page.evaluate<number>("document.documentElement.scrollWidth");
      assert.ok(wide <= 375, `the page fits a 375 px screen (it is ${wide} px wide)`);
      console.log(`Screenshots: ${desktop} ${phone}`);

      // Delete, confirming the dialog.
      const dialogs: string[] = [];
      page.once("dialog", async (dialog) => {
        dialogs.push(dialog.message());
        await dialog.accept();
      });
      await page.click('#files tr[data-name="ui-test.bin"] button.danger');
      await page.waitForSelector('#files tr[data-name="ui-test.bin"]', { state: "detached" });
      assert.deepEqual(dialogs, ['Delete "ui-test.bin"? This cannot be undone.']);
      const gone = await cli("meta", "ui-test.bin");
      assert.equal(gone.code, 1, "the CLI finds it gone");
      assert.match(gone.stderr, /does not exist/);
      assert.deepEqual(problems, [], "no script error in the page");
      await context.close();
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("./dfs serve --ui-host gets the network on that host: the dashboard answers there", async () => {
  await using server = await TestServer.start({
    launcher: true,
    ranks: 2,
    replicas: 1,
    extraArgs: ["--ui-port", "0", "--ui-host", "127.0.0.2"],
  });
  const ui = /; ui on (127\.0\.0\.2:\d+)/.exec(server.readyLine)?.[1];
  assert.ok(ui, `the ready line names the dashboard on its host: ${server.readyLine}`);
  const session = await fetch(`http://${ui}/api/session`);
  assert.deepEqual(await session.json(), { authRequired: false, authenticated: true });
  const page = await fetch(`http://${ui}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>dfs dashboard<\/title>/);
});
