// Browser tests of the dashboard against the real daemon: starts `cronvisor run` with a test
// config on an ephemeral port, drives Debian's chromium through playwright-core (never a
// downloaded browser), and saves a screenshot of each screen into $CV_UI_SHOTS (default
// <build>/ui-shots). Exits 0 when every check passed, 1 on the first failure, 77 (skipped) when
// chromium or the REST API is not there.
//
// env: CRONVISOR_BIN (the daemon), CHROMIUM (default /usr/bin/chromium), CV_UI_SHOTS.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BIN = resolve(process.env.CRONVISOR_BIN ?? "build/cronvisor");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.CV_UI_SHOTS ?? join(process.env.CV_BUILD_DIR ?? "build", "ui-shots");
const SKIP = 77;
const T = 20000; // per wait

const PING_KEY = "ui-ping-key-for-remote-backup";
const TOKENS = { admin: "ui-admin-token", operator: "ui-operator-token", viewer: "ui-viewer-token" };

const CONFIG = (dir) => `
server:
  listen: "127.0.0.1:0"
storage:
  sqlite:
    path: ${dir}/cronvisor.db
defaults:
  timezone: UTC
auth:
  tokens:
    - { name: admin, role: admin, token: ${TOKENS.admin} }
    - { name: ops, role: operator, token: ${TOKENS.operator} }
    - { name: watcher, role: viewer, token: ${TOKENS.viewer} }
  proxy: { user_header: X-Forwarded-Email, role_header: X-Forwarded-Role, from: [127.0.0.1/32] }
links:
  - { title: Runbook, url: "https://example.com/runbook" }
probes:
  - { name: broken-dep, type: exec, interval: 1h, command: "echo down >&2; exit 2" }
jobs:
  - name: quick-ok
    title: Quick OK
    description: Succeeds after a short while and reports items.
    schedule: manual
    command: 'echo starting; sleep 1.5; echo "{\\"items_processed\\": 7}" >&$$CRONVISOR_RESULT_FD; echo finished'
  - name: always-fails
    title: Always fails
    description: Exits 3 with a message on stderr.
    schedule: manual
    command: 'echo "upstream answered 503" >&2; exit 3'
    on_failure: [nightly]
  - name: chatty
    title: Chatty export
    description: Prints a line every 300 ms for about 9 seconds.
    schedule: manual
    command: 'i=1; while [ $$i -le 30 ]; do echo "exported batch $$i"; i=$$((i + 1)); sleep 0.3; done'
  - name: nightly
    title: Nightly rebuild
    description: Editable schedule.
    schedule: "0 3 * * *"
    command: "true"
  - name: billing
    title: Monthly billing
    description: Locked in the configuration.
    schedule: "0 4 1 * *"
    schedule_human: At 04:00 on the 1st of every month
    locked: true
    command: "true"
  - name: remote-backup
    title: Remote backup
    description: Runs on another host and reports by ping.
    schedule: "0 5 1 1 *"
    ping: { key: ${PING_KEY} }
  - name: ticker
    title: Ticker
    description: Fires every second once enabled (the no-request step).
    schedule: "@every 1s"
    enabled: false
    command: "true"
`;

let failures = 0;
let current = "";
function check(cond, what) {
  if (!cond) throw new Error(`${current}: ${what}`);
}

async function step(name, fn) {
  current = name;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message.split("\n").slice(0, 3).join(" / ")}`);
  }
}

function startDaemon() {
  const dir = mkdtempSync(join(tmpdir(), "cvui-"));
  writeFileSync(join(dir, "cronvisor.yaml"), CONFIG(dir));
  const proc = spawn(BIN, ["run", "-c", join(dir, "cronvisor.yaml")], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const port = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" line in 20 s:\n${log}`)), 20000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /listening on https?:\/\/[^\s:]+:(\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => reject(new Error(`daemon exited ${code}:\n${log}`)));
  });
  return { proc, dir, port, log: () => log };
}

async function login(page, base, token) {
  await page.goto(base + "/");
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-conn=live]", { timeout: T });
  await page.waitForSelector("tr[data-job]", { timeout: T });
}

const row = (name) => `tr[data-job="${name}"]`;
const badge = (name) => `${row(name)} [data-status]`;

async function statusOf(page, name) {
  return page.getAttribute(badge(name), "data-status");
}

async function waitStatus(page, sel, status) {
  await page.waitForSelector(`${sel} [data-status="${status}"], ${sel}[data-status="${status}"]`, { timeout: T });
}

async function runNow(page, name) {
  await page.click(`${row(name)} [data-action=run-now]`);
  await page.waitForSelector("dialog[open]", { timeout: T });
  await page.click("dialog[open] button.primary");
}

// uidetail: run and job detail. Two jobs are added by a reload (so the earlier steps' job counts
// stay as they are): one that reports progress and a summary, fails and is retried twice, in
// Asia/Tokyo; one that runs long enough to be cancelled from its page.
const DETAIL_JOBS = `
  - name: staged-import
    title: Staged import
    description: Reports progress and a summary, then fails; retried twice.
    schedule: manual
    timezone: Asia/Tokyo
    retries: { max: 2, backoff: 1s, backoff_max: 1s }
    command: 'echo "{\\"progress\\": 0.5, \\"summary\\": {\\"rows\\": 1200, \\"source\\": \\"s3://imports\\", \\"tables\\": [\\"a\\", \\"b\\"]}}" >&$$CRONVISOR_RESULT_FD; echo loading; echo "bad row 7" >&2; exit 4'
  - name: slow-import
    title: Slow import
    description: Reports progress every half second for a minute (the Cancel step).
    schedule: manual
    command: 'i=1; while [ $$i -le 120 ]; do echo "{\\"progress\\": $$(($$i * 100 / 120))e-2}" >&$$CRONVISOR_RESULT_FD; echo "imported chunk $$i"; i=$$((i + 1)); sleep 0.5; done'
`;

async function detailSteps(browser, base, d) {
  const h = { Authorization: `Bearer ${TOKENS.admin}` };
  const get = async (path) => (await fetch(base + path, { headers: h })).json();
  // The viewer's browser is in New York, the staged-import job in Tokyo: the two zones differ.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB", timezoneId: "America/New_York" });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await step("detail: a reload adds the detail jobs", async () => {
      writeFileSync(join(d.dir, "cronvisor.yaml"), CONFIG(d.dir) + DETAIL_JOBS);
      const r = await fetch(`${base}/api/reload`, { method: "POST", headers: h });
      check(r.status === 200, `reload: ${r.status} ${await r.text()}`);
      await login(page, base, TOKENS.operator);
    });

    let first, attempts;
    await step("detail: a retried run's page shows its summary as a table and links every attempt", async () => {
      const tr = await fetch(`${base}/api/jobs/staged-import/trigger`, { method: "POST", headers: h });
      check(tr.status === 202 || tr.status === 200, `trigger: ${tr.status}`);
      first = (await tr.json()).run_id;
      for (const end = Date.now() + 60000; ; await new Promise((r) => setTimeout(r, 200))) {
        attempts = (await get(`/api/jobs/staged-import/runs?limit=10`)).runs.filter((r) => r.id === first || r.retry_of === first);
        if (attempts.length === 3 && attempts.every((r) => r.finished_at)) break;
        check(Date.now() < end, `three finished attempts in 60 s: ${JSON.stringify(attempts.map((r) => [r.id, r.status]))}`);
      }
      attempts.sort((a, b) => a.id - b.id);
      check(attempts.map((r) => r.attempt).join() === "1,2,3", `attempt numbers: ${attempts.map((r) => r.attempt)}`);
      const second = attempts[1].id;
      await page.goto(`${base}/runs/${second}`);
      await page.waitForSelector(`dl[data-run="${second}"] [data-role=attempts]`, { timeout: T });
      const links = await page.$$eval(`dl[data-run="${second}"] [data-role=attempts] a`, (as) => as.map((a) => [a.getAttribute("href"), a.dataset.attempt]));
      check(JSON.stringify(links) === JSON.stringify([[`/runs/${attempts[0].id}`, "1"], [`/runs/${attempts[2].id}`, "3"]]), `links to attempts 1 and 3: ${JSON.stringify(links)}`);
      check(await page.textContent(`dl[data-run="${second}"] [data-role=attempts] [aria-current=page]`) === "2", "this attempt is marked");
      const kv = await page.$$eval("table[data-role=summary] tr", (rs) => rs.map((r) => [r.querySelector("th").textContent, r.querySelector("td").textContent]));
      check(JSON.stringify(kv) === JSON.stringify([["rows", "1200"], ["source", "s3://imports"], ["tables", '["a","b"]']]), `summary table: ${JSON.stringify(kv)}`);
      check(await page.locator("[data-action=cancel-run]").count() === 0, "no Cancel on a finished run");
      await page.click(`a[href="/runs/${attempts[2].id}"]`);
      await page.waitForSelector(`dl[data-run="${attempts[2].id}"] [data-role=attempts] a[href="/runs/${first}"]`, { timeout: T });
      await page.screenshot({ path: join(SHOTS, "run-attempts.png"), fullPage: true });
    });

    await step("detail: the job page shows full statistics, the error's first line and times in the job's zone", async () => {
      await page.goto(`${base}/jobs/staged-import`);
      await page.waitForSelector(`tr[data-run="${attempts[2].id}"]`, { timeout: T });
      const job = await get("/api/jobs/staged-import");
      await page.waitForFunction((id) => document.querySelector("[data-stat=last-failure] a")?.getAttribute("href") === `/runs/${id}`, attempts[2].id, { timeout: T });
      const stat = async (k) => (await page.textContent(`[data-stat=${k}]`)).trim();
      await page.waitForFunction(() => document.querySelector("[data-stat=runs]")?.textContent === "3", null, { timeout: T });
      check(job.stats.runs === 3, `the API counts 3 runs: ${job.stats.runs}`);
      check(await stat("failures") === "3" && await stat("successes") === "0" && await stat("partials") === "0", "counts per status");
      check(await stat("last-success") === "—", `no success yet: ${await stat("last-success")}`);
      check(/\d/.test(await stat("avg-duration")), `average duration: ${await stat("avg-duration")}`);
      check(await stat("timezone") === "Asia/Tokyo", "the job's zone");
      const t = page.locator(`tr[data-run="${attempts[2].id}"] time`);
      const text = await t.textContent(), title = await t.getAttribute("title");
      check(/GMT\+9/.test(text), `the row's time in Tokyo: ${text}`);
      check(/GMT-[45]/.test(title ?? ""), `the viewer's (New York) time on hover: ${title}`);
      const err = (await page.textContent(`tr[data-run="${attempts[2].id}"] [data-role=run-error-line]`)).trim();
      check(err.length > 0 && err === attempts[2].error.split("\n")[0].trim(), `the error's first line: "${err}" (error "${attempts[2].error}")`);
      await page.waitForSelector('.chart [data-points="3"][data-x-min]', { timeout: T });
      const [xMin, xMax] = await page.$eval(".chart [data-x-min]", (e) => [Number(e.dataset.xMin), Number(e.dataset.xMax)]);
      const t0 = Date.parse(attempts[0].started_at) / 1000, t2 = Date.parse(attempts[2].started_at) / 1000;
      check(xMin <= t0 && xMax >= t2 && xMax - xMin <= 2 * 3600, `the chart's axis fits the runs: ${xMin}..${xMax} for ${t0}..${t2}`);
      await page.screenshot({ path: join(SHOTS, "job-stats.png"), fullPage: true });
    });

    await step("detail: a running run shows progress and timed live lines, and an operator cancels it", async () => {
      const tr = await fetch(`${base}/api/jobs/slow-import/trigger`, { method: "POST", headers: h });
      const id = (await tr.json()).run_id;
      await page.goto(`${base}/runs/${id}`);
      await page.waitForSelector(`dl[data-run="${id}"][data-status=RUNNING]`, { timeout: T });
      await page.waitForFunction(() => Number(document.querySelector("[data-role=progress] progress")?.value) > 0.02, null, { timeout: T });
      await page.waitForFunction(() => document.querySelectorAll("[data-role=output] [data-role=line-ts]").length >= 2, null, { timeout: T });
      const ts = await page.$$eval("[data-role=output] [data-role=line-ts]", (es) => es.map((e) => e.textContent));
      check(ts.every((x) => /^\d\d:\d\d:\d\d\.\d{3}$/.test(x)), `line times: ${ts.slice(0, 3)}`);
      const p1 = Number(await page.getAttribute("[data-role=progress] progress", "value"));
      await page.waitForFunction((p) => Number(document.querySelector("[data-role=progress] progress")?.value) > p, p1, { timeout: T });
      await page.screenshot({ path: join(SHOTS, "run-progress.png"), fullPage: true });
      await page.click("[data-action=cancel-run]");
      await page.waitForSelector("dialog[open]", { timeout: T });
      check(/Cancel run #\d+/.test(await page.textContent("dialog[open] h2")), "the confirm names the run");
      await page.click("dialog[open] button.primary");
      await page.waitForSelector(`dl[data-run="${id}"][data-status=CANCELLED]`, { timeout: T });
      check(await page.locator("[data-action=cancel-run]").count() === 0, "Cancel gone once cancelled");
      check(await page.locator("[data-role=progress]").count() === 0, "no progress bar once ended");
      const run = await get(`/api/runs/${id}`);
      check(run.status === "CANCELLED", `the API agrees: ${run.status}`);
    });

    await step("detail: one run's chart spans hours, not years", async () => {
      await page.goto(`${base}/jobs/slow-import`);
      const fig = await page.waitForSelector('.chart [data-points="1"][data-x-min]', { timeout: T });
      const span = Number(await fig.getAttribute("data-x-max")) - Number(await fig.getAttribute("data-x-min"));
      check(span > 0 && span <= 2 * 3600, `the axis of one run spans ${span} s`);
    });

    await step("detail: a viewer gets no Cancel", async () => {
      const tr = await fetch(`${base}/api/jobs/slow-import/trigger`, { method: "POST", headers: h });
      const id = (await tr.json()).run_id;
      const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const vp = await vctx.newPage();
      await login(vp, base, TOKENS.viewer);
      await vp.goto(`${base}/runs/${id}`);
      await vp.waitForSelector(`dl[data-run="${id}"][data-status=RUNNING]`, { timeout: T });
      check(await vp.locator("[data-action=cancel-run]").count() === 0, "no Cancel for a viewer");
      await vctx.close();
      const c = await fetch(`${base}/api/runs/${id}/cancel`, { method: "POST", headers: h });
      check(c.status === 202, `cancelled by the API: ${c.status}`);
    });

    await step("detail: no script errors", async () => {
      check(errors.length === 0, errors.join("; "));
    });
  } finally {
    await ctx.close();
  }
}
// ---- the Runs page (issue 16): cards open it pre-filtered, filters in the URL, keyset pages,
// live rows without requests, en/sv/da. Runs after quick-ok succeeded and always-fails failed.
const runRows = (page) => page.$$eval("table[data-role=all-runs] tr[data-run]", (rs) => rs.map((r) => ({
  id: Number(r.getAttribute("data-run")), job: r.getAttribute("data-run-job"),
  status: r.querySelector("[data-status]")?.getAttribute("data-status"), trigger: r.children[3].textContent,
})));
async function waitRuns(page, pred, arg) {
  try {
    await page.waitForFunction(pred, arg, { timeout: T });
  } catch (e) {
    throw new Error(`${e.message.split("\n")[0]}; at ${page.url()} rows ${JSON.stringify(await runRows(page))}, waited for ${JSON.stringify(arg)}`);
  }
}
const rowIds = (ids) => [...document.querySelectorAll("table[data-role=all-runs] tr[data-run]")].map((r) => r.getAttribute("data-run")).join() === ids.join();

async function runsPageSteps(page, base) {
  const h = { Authorization: `Bearer ${TOKENS.admin}` };
  const apiRuns = async (q) => (await (await fetch(`${base}/api/runs?${q}`, { headers: h })).json()).runs;

  await step("the overview has a Partial card beside Succeeded and Failed; the Failed card opens the Runs page on the last 24 hours' failures", async () => {
    await page.goto(base + "/");
    await page.waitForSelector("[data-card=partial]", { timeout: T });
    const cards = await page.$$eval(".cards [data-card]", (cs) => cs.map((c) => c.getAttribute("data-card")));
    check(cards.join() === "running,queued,succeeded,partial,failed", `cards in order: ${cards}`);
    check(/Partial \(24 h\)/.test(await page.textContent("[data-card=partial]")), "the Partial card's label");
    await page.click("[data-card=failed]");
    await page.waitForSelector("table[data-role=all-runs] tr[data-run]", { timeout: T });
    const u = new URL(page.url());
    check(u.pathname === "/runs" && u.searchParams.get("status") === "FAILED,TIMED_OUT", `the card's URL: ${page.url()}`);
    const since = Date.parse(u.searchParams.get("since"));
    check(Math.abs(Date.now() - 24 * 3600e3 - since) < 120e3, `since is 24 hours ago: ${u.searchParams.get("since")}`);
    const rows = await runRows(page);
    check(rows.length >= 1 && rows.every((r) => r.status === "FAILED") && rows.some((r) => r.job === "always-fails"), `failed runs only: ${JSON.stringify(rows)}`);
    check(await page.inputValue("[data-filter=status]") === "FAILED,TIMED_OUT", "the status filter shows the card's statuses");
    await page.goBack();
    await page.waitForSelector("[data-card=partial]", { timeout: T });
    check(new URL(page.url()).pathname === "/", "back to the overview");
    await page.click("[data-card=succeeded]");
    await waitRuns(page, () => document.querySelectorAll("table[data-role=all-runs] tr[data-run]").length > 0);
    check((await runRows(page)).every((r) => r.status === "SUCCESS"), "the Succeeded card's runs succeeded");
  });

  await step("the Runs page filters by job, status, trigger and date range in the URL; back restores each; the URL is shareable", async () => {
    await page.goto(base + "/runs");
    await page.waitForSelector("table[data-role=all-runs] tr[data-run]", { timeout: T });
    const jobs = new Set((await runRows(page)).map((r) => r.job));
    check(jobs.has("quick-ok") && jobs.has("always-fails"), `runs of every job: ${[...jobs]}`);
    await page.fill("[data-filter=job]", "quick-ok");
    await page.press("[data-filter=job]", "Tab");
    await page.waitForURL((u) => u.searchParams.get("job") === "quick-ok", { timeout: T });
    await waitRuns(page, () => [...document.querySelectorAll("table[data-role=all-runs] tr[data-run]")].every((r) => r.getAttribute("data-run-job") === "quick-ok"));
    await page.selectOption("[data-filter=status]", "SUCCESS");
    await page.waitForURL((u) => u.searchParams.get("status") === "SUCCESS" && u.searchParams.get("job") === "quick-ok", { timeout: T });
    await page.fill("[data-filter=trigger]", "api:admin");
    await page.press("[data-filter=trigger]", "Tab");
    await page.waitForURL((u) => u.searchParams.get("trigger") === "api:admin", { timeout: T });
    const want = (await apiRuns("job=quick-ok&status=SUCCESS&trigger=api:admin")).map((r) => r.id);
    await waitRuns(page, rowIds, want);
    check(want.length >= 1, "quick-ok succeeded when the admin ran it");
    const shared = page.url();
    await page.fill("[data-filter=until]", "2020-01-01T00:00");
    await page.waitForURL((u) => u.searchParams.has("until"), { timeout: T });
    check(Date.parse(new URL(page.url()).searchParams.get("until")) < Date.parse("2020-01-02T00:00:00Z"), `until: ${page.url()}`);
    await page.waitForSelector("[data-role=no-runs]", { timeout: T });
    await page.goBack();
    await waitRuns(page, (n) => document.querySelectorAll("table[data-role=all-runs] tr[data-run]").length === n, want.length);
    check(page.url() === shared, `back to ${shared}: ${page.url()}`);
    check(await page.inputValue("[data-filter=until]") === "", "the date filter is cleared again");
    await page.goBack();
    await page.waitForURL((u) => !u.searchParams.has("trigger"), { timeout: T });
    check(await page.inputValue("[data-filter=trigger]") === "", "the trigger filter follows the URL");
    check(await page.inputValue("[data-filter=status]") === "SUCCESS", "the status filter stays");
    // a shared link opens the same view for another person (signed in in a tab of their own)
    const other = await page.context().newPage();
    try {
      await login(other, base, TOKENS.viewer);
      await other.goto(shared);
      await waitRuns(other, rowIds, want);
      check(await other.inputValue("[data-filter=job]") === "quick-ok", "the shared link's job filter");
    } finally {
      await other.close();
    }
  });

  await step("a Runs page URL with a bad date says which parameter is wrong", async () => {
    await page.goto(base + "/runs?since=yesterday");
    const alert = await page.waitForSelector("main [role=alert]", { timeout: T });
    check(/"since".*RFC 3339/.test(await alert.textContent()), `the error: ${await alert.textContent()}`);
    check(await page.locator("table[data-role=all-runs]").count() === 0, "no rows");
  });

  await step("the Runs page pages by keyset: older, newer and the back button", async () => {
    // two more failures, each chaining nightly: seven runs or more
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${base}/api/jobs/always-fails/trigger`, { method: "POST", headers: h });
      check(r.status === 202, `trigger: ${r.status}`);
      const id = (await r.json()).run_id;
      for (const t0 = Date.now(); (await apiRuns(`trigger=chain:${id}&status=SUCCESS`)).length === 0; await new Promise((r) => setTimeout(r, 100)))
        check(Date.now() - t0 < T, `run ${id} and the run it chained ended`);
    }
    const all = (await apiRuns("limit=500")).map((r) => r.id);
    check(all.length >= 6, `enough runs to page: ${all.length}`);
    await page.goto(base + "/runs?limit=2");
    await waitRuns(page, rowIds, all.slice(0, 2).map(String));
    await page.click("[data-role=older]");
    await waitRuns(page, rowIds, all.slice(2, 4).map(String));
    check(new URL(page.url()).searchParams.has("cursor"), "the page is in the URL");
    await page.click("[data-role=older]");
    await waitRuns(page, rowIds, all.slice(4, 6).map(String));
    await page.click("[data-role=newer]");
    await waitRuns(page, rowIds, all.slice(2, 4).map(String));
    await page.goBack(); // back to the third page
    await waitRuns(page, rowIds, all.slice(4, 6).map(String));
    await page.click("[data-role=newest]");
    await waitRuns(page, rowIds, all.slice(0, 2).map(String));
  });

  await step("the Runs page shows a new run of its filter live and follows it to the end, without an API request; other jobs' runs stay out", async () => {
    await page.goto(base + "/runs?job=quick-ok");
    await page.waitForSelector("[data-conn=live]", { timeout: T });
    await page.waitForSelector("table[data-role=all-runs] tr[data-run]", { timeout: T });
    await page.waitForLoadState("networkidle", { timeout: T });
    const asked = [];
    const onRequest = (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith("/api/") && u.pathname !== "/api/events") asked.push(`${r.method()} ${u.pathname}${u.search}`);
    };
    page.on("request", onRequest);
    const trig = async (job) => {
      const r = await fetch(`${base}/api/jobs/${job}/trigger`, { method: "POST", headers: h });
      check(r.status === 202, `trigger ${job}: ${r.status}`);
      return (await r.json()).run_id;
    };
    const failId = await trig("always-fails");
    const id = await trig("quick-ok");
    await page.waitForSelector(`tr[data-run="${id}"] [data-status=RUNNING]`, { timeout: T });
    check((await runRows(page))[0].id === id, "the new run is the first row");
    await page.screenshot({ path: join(SHOTS, "runs.png"), fullPage: true });
    await page.waitForSelector(`tr[data-run="${id}"] [data-status=SUCCESS]`, { timeout: T });
    for (const t0 = Date.now(); !(await apiRuns(`job=always-fails&limit=1`))[0]?.finished_at; await new Promise((r) => setTimeout(r, 100)))
      check(Date.now() - t0 < T, "always-fails ended");
    page.off("request", onRequest);
    check(await page.locator(`tr[data-run="${failId}"]`).count() === 0, "the other job's run is not listed");
    check(asked.length === 0, `${asked.length} API requests for the events: ${asked.join(", ")}`);
  });

  await step("the Runs page at phone width, in Swedish and Danish", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base + "/runs");
    await page.waitForSelector("table[data-role=all-runs] tr[data-run]", { timeout: T });
    const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `no horizontal scroll (${overflow}px)`);
    await page.screenshot({ path: join(SHOTS, "runs-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    for (const [lang, title, older, partial] of [["sv", "Körningar", "Äldre", "Delvis (24 h)"], ["da", "Kørsler", "Ældre", "Delvis (24 t)"], ["en", "Runs", "Older", "Partial (24 h)"]]) {
      await page.goto(base + "/runs");
      await page.selectOption(".who select", lang);
      await page.waitForFunction((s) => document.querySelector("#runs-h")?.textContent === s, title, { timeout: T });
      check((await page.textContent("main .pager")).includes(older), `${lang}: the pager`);
      check(await page.textContent('header nav a[href="/runs"]') === title, `${lang}: the navigation`);
      await page.click('header nav a[href="/"]');
      await page.waitForSelector("[data-card=partial]", { timeout: T });
      check((await page.textContent("[data-card=partial] .card-label")) === partial, `${lang}: the Partial card`);
    }
  });
}

// axe-core (a devDependency of the dashboard, http/ui/package.json) on every page, in light and
// dark colour schemes; no page scrolls sideways at 390 px; health and role-aware actions.
const AXE = join(dirname(fileURLToPath(import.meta.url)), "../../http/ui/node_modules/axe-core/axe.min.js");
// tz (issue 16): a job's time zone edited with its schedule (admin), and the switch between the
// job's zone and the viewer's for the times on the job page. The browser is in New York, the job
// goes to Tokyo; which hour a time is in is asked of the page's Intl, never written down here.
async function tzSteps(browser, base) {
  const h = { Authorization: `Bearer ${TOKENS.admin}` };
  const reset = async () => {
    const r = await fetch(`${base}/api/jobs/nightly/overrides`, { method: "DELETE", headers: h });
    check(r.status === 200, `nightly's overrides reset: ${r.status}`);
  };
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB", timezoneId: "America/New_York" });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const hourIn = (zone, iso) => page.evaluate(([z, t]) => new Intl.DateTimeFormat("en-GB",
    { timeZone: z, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(t)), [zone, iso]);
  // the editor lists five next fires of "0 3 * * *", each at 03:00 in zone
  const firesAt3In = (zone) => page.waitForFunction((z) => {
    const f = new Intl.DateTimeFormat("en-GB", { timeZone: z, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const ts = [...document.querySelectorAll("[data-role=next-fires] time")].map((e) => e.getAttribute("datetime"));
    return ts.length === 5 && ts.every((t) => f.format(new Date(t)) === "03:00");
  }, zone, { timeout: T });
  const head = ".job-head time";
  try {
    await step("tz: an admin picks the job's zone beside its schedule; the next fires and the next run follow it", async () => {
      await reset();
      await login(page, base, TOKENS.admin);
      await page.goto(`${base}/jobs/nightly`);
      await page.waitForSelector("#sched-tz", { timeout: T });
      check(await page.inputValue("#sched-tz") === "UTC", `the job's zone in the editor: ${await page.inputValue("#sched-tz")}`);
      check(await page.$eval("#sched-tz-list", (l) => [...l.options].some((o) => o.value === "Asia/Tokyo")), "zones suggested");
      await firesAt3In("UTC");
      await page.fill("#sched-tz", "Asia/Tokyo");
      await firesAt3In("Asia/Tokyo");
      const shown = await page.textContent("[data-role=next-fires] li time");
      check(/GMT\+9/.test(shown), `a next fire shown in the chosen zone: ${shown}`);
      await page.click("[data-role=schedule-editor] button[type=submit]");
      await page.waitForFunction(() => document.querySelector("[data-stat=timezone]")?.textContent === "Asia/Tokyo", null, { timeout: T });
      const job = await (await fetch(`${base}/api/jobs/nightly`, { headers: h })).json();
      check(job.timezone === "Asia/Tokyo" && job.overridden.includes("timezone"), `the API: ${job.timezone} ${job.overridden}`);
      check(await hourIn("Asia/Tokyo", job.next_fire) === "03:00", `next run at 03:00 in Tokyo: ${job.next_fire}`);
      await page.waitForFunction(([sel, iso]) => document.querySelector(sel)?.getAttribute("datetime") === iso, [head, job.next_fire], { timeout: T });
      check(/timezone/.test(await page.textContent("[data-role=overrides]")), "the zone is listed as overridden");
      await page.screenshot({ path: join(SHOTS, "tz-edit.png"), fullPage: true });
    });

    await step("tz: an unknown zone shows the server's error, translated, and cannot be saved", async () => {
      for (const [lang, text] of [["en", "The time zone is not valid"], ["sv", "Tidszonen är inte giltig"]]) {
        await page.evaluate((l) => localStorage.setItem("cronvisor.lang", l), lang);
        await page.reload();
        await page.waitForSelector("#sched-tz", { timeout: T });
        await page.fill("#sched-tz", "Mars/Olympus");
        const err = await (await page.waitForSelector("[data-role=schedule-error]", { timeout: T })).textContent();
        check(err.includes(text) && err.includes("Mars/Olympus"), `${lang}: ${err}`);
        check(await page.getAttribute("#sched-tz", "aria-invalid") === "true", "the zone input is marked invalid");
        check(await page.getAttribute("#sched-input", "aria-invalid") === "false", "the expression is not");
        check(await page.isDisabled("[data-role=schedule-editor] button[type=submit]"), "Save disabled");
      }
      await page.evaluate(() => localStorage.setItem("cronvisor.lang", "en"));
      await page.reload();
      await page.waitForSelector("#sched-tz", { timeout: T });
    });

    await step("tz: the switch shows times in the viewer's zone (the job's on hover), by keyboard, and is remembered", async () => {
      await page.waitForSelector(`${head}[data-view=job]`, { timeout: T });
      check(/GMT\+9/.test(await page.textContent(head)), `in Tokyo: ${await page.textContent(head)}`);
      check(/GMT-[45]/.test(await page.getAttribute(head, "title")), `New York on hover: ${await page.getAttribute(head, "title")}`);
      check(await page.getByRole("radio", { name: "your zone (America/New_York)" }).count() === 1, "the viewer's zone option is labelled");
      check(await page.getByRole("group", { name: "Show times in" }).count() === 1, "the switch is a labelled group");
      await page.focus("[data-role=tz-view] input[value=job]");
      await page.keyboard.press("ArrowRight");
      await page.waitForSelector(`${head}[data-view=viewer]`, { timeout: T });
      check(await page.isChecked("[data-role=tz-view] input[value=viewer]"), "the viewer's zone is chosen");
      check(/GMT-[45]/.test(await page.textContent(head)), `in New York: ${await page.textContent(head)}`);
      const title = await page.getAttribute(head, "title");
      check(/Asia\/Tokyo/.test(title) && /GMT\+9/.test(title), `the job's time on hover: ${title}`);
      const fire = "[data-role=next-fires] li time";
      // the next fires are their own component: they follow on their next render
      try {
        await page.waitForFunction((sel) => {
          const e = document.querySelector(sel);
          return !!e && /GMT-[45]/.test(e.textContent) && /GMT\+9/.test(e.getAttribute("title") ?? "");
        }, fire, { timeout: T });
      } catch {
        check(false, `the next fires follow: ${await page.textContent(fire)} (title ${await page.getAttribute(fire, "title")})`);
      }
      check(await page.evaluate(() => localStorage.getItem("cronvisor.timeView")) === "viewer", "kept in localStorage");
      await page.reload();
      await page.waitForSelector(`${head}[data-view=viewer]`, { timeout: T });
      await page.focus("[data-role=tz-view] input[value=viewer]");
      await page.keyboard.press("ArrowLeft");
      await page.waitForSelector(`${head}[data-view=job]`, { timeout: T });
      check(/GMT\+9/.test(await page.textContent(head)), `back in Tokyo: ${await page.textContent(head)}`);
      check(await page.evaluate(() => localStorage.getItem("cronvisor.timeView")) === null, "the default is not stored");
    });

    await step("tz: a viewer's editor has the zone disabled (the switch works)", async () => {
      const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      try {
        const vp = await vctx.newPage();
        await login(vp, base, TOKENS.viewer);
        await vp.goto(`${base}/jobs/nightly`);
        await vp.waitForSelector("#sched-tz", { timeout: T });
        check(await vp.isDisabled("#sched-tz"), "zone input disabled");
        check(await vp.isEnabled("[data-role=tz-view] input[value=viewer]"), "the switch is not an edit");
        const r = await vp.evaluate(async (tok) => (await fetch("/api/jobs/nightly/schedule", { method: "PUT",
          headers: { Authorization: `Bearer ${tok}`, "Content-Type": "application/json" },
          body: JSON.stringify({ schedule: "0 3 * * *", timezone: "UTC" }) })).status, TOKENS.viewer);
        check(r === 403, `the API refuses a viewer's zone: ${r}`);
      } finally {
        await vctx.close();
      }
    });

    await step("tz: no script errors", async () => {
      check(errors.length === 0, errors.join("; "));
    });
  } finally {
    await reset().catch(() => {});
    await ctx.close();
  }
}


async function axeSerious(page) {
  await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
  });
}

async function polishSteps(browser, base) {
  const h = { Authorization: `Bearer ${TOKENS.admin}` };
  const runId = (await (await fetch(`${base}/api/runs?limit=1`, { headers: h })).json()).runs?.[0]?.id;
  // path, what shows it has rendered
  const pages = [
    ["/", "tr[data-job]"], ["/jobs", "tr[data-job]"], ["/jobs/nightly", "#sched-input"],
    ["/jobs/always-fails", "tr[data-run]"], [`/runs/${runId}`, `dl[data-run="${runId}"]`],
    ["/instances", "tr[data-instance]"],
  ];
  for (const scheme of ["light", "dark"]) {
    await step(`axe: no serious or critical violation on any page (${scheme})`, async () => {
      check(runId, "a run to show");
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB", colorScheme: scheme });
      const pg = await ctx.newPage();
      const found = [];
      try {
        await pg.goto(base + "/");
        await pg.waitForSelector("#token", { timeout: T });
        found.push(...(await axeSerious(pg)).map((v) => `login: ${v}`));
        await login(pg, base, TOKENS.admin);
        for (const [path, ready] of pages) {
          await pg.goto(base + path);
          await pg.waitForSelector("[data-conn=live]", { timeout: T });
          await pg.waitForSelector(ready, { timeout: T });
          found.push(...(await axeSerious(pg)).map((v) => `${path}: ${v}`));
        }
      } finally {
        await ctx.close();
      }
      check(found.length === 0, `${found.length} violations: ${found.join("; ")}`);
    });
  }

  await step("at 390 px no page scrolls sideways, and axe finds nothing serious there either", async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "en-GB" });
    const pg = await ctx.newPage();
    const wide = [], found = [];
    try {
      const over = () => pg.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
      await pg.goto(base + "/");
      await pg.waitForSelector("#token", { timeout: T });
      if ((await over()) > 0) wide.push(`login: ${await over()} px`);
      await login(pg, base, TOKENS.admin);
      for (const [path, ready] of pages) {
        await pg.goto(base + path);
        await pg.waitForSelector("[data-conn=live]", { timeout: T });
        await pg.waitForSelector(ready, { timeout: T });
        const o = await over();
        found.push(...(await axeSerious(pg)).map((v) => `${path} at 390 px: ${v}`));
        if (o > 0) {
          // name the innermost elements that stick out, so the failure says what to fix
          const culprits = await pg.evaluate(() => [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 &&
              ![...e.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 0.5))
            .slice(0, 4).map((e) => `${e.tagName.toLowerCase()}${e.className ? "." + String(e.className).split(" ").join(".") : ""}${e.getAttribute("data-role") ? `[data-role=${e.getAttribute("data-role")}]` : ""} (${Math.round(e.getBoundingClientRect().width)} px)`));
          wide.push(`${path}: ${o} px too wide: ${culprits.join(", ")}`);
        }
        await pg.screenshot({ path: join(SHOTS, `phone${path.replace(/\//g, "_") || "_"}.png`), fullPage: true });
      }
    } finally {
      await ctx.close();
    }
    check(wide.length === 0, wide.join("; "));
    check(found.length === 0, `${found.length} axe violations: ${found.join("; ")}`);
  });

  await step("a degraded probe is amber, not grey; a viewer sees why there is no Refresh and no switch", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "sv-SE" });
    const pg = await ctx.newPage();
    try {
      const probe = (name, status) => ({ name, type: "exec", status, latency_ms: 3, checked_at: new Date().toISOString(),
        since: null, message: status === "healthy" ? "" : "slow answer", consecutive_failures: 0 });
      await pg.route("**/api/health", (r) => r.fulfill({ status: 200, contentType: "application/json",
        body: JSON.stringify({ probes: [probe("slow-dep", "degraded"), probe("never-dep", "unknown")] }) }));
      await login(pg, base, TOKENS.viewer);
      await pg.waitForSelector('[data-probe="slow-dep"][data-probe-status=degraded]', { timeout: T });
      const dot = (n) => pg.$eval(`[data-probe="${n}"] .dot`, (e) => getComputedStyle(e).backgroundColor);
      const amber = await dot("slow-dep"), grey = await dot("never-dep");
      check(amber !== grey, `degraded (${amber}) differs from unknown (${grey})`);
      const [r, g, b] = amber.match(/\d+/g).map(Number);
      check(r > g && g > b && r - b > 80, `degraded is amber: ${amber}`);
      check((await pg.textContent('[data-probe="slow-dep"]')).includes("nedsatt"), "the status is in Swedish");
      check(await pg.locator("[data-probe] button").count() === 0, "no Refresh button for a viewer");
      check(/viewer/.test(await pg.textContent("[data-role=refresh-reason]")), "the reason names the role");
      const title = await pg.getAttribute(`${row("nightly")} label.switch`, "title");
      check(/viewer/.test(title ?? ""), `the disabled switch says why: ${title}`);
    } finally {
      await ctx.close();
    }
  });

  await step("the colours follow the system, and the toggle overrides it across a reload", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB", colorScheme: "light" });
    const pg = await ctx.newPage();
    try {
      const bg = () => pg.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
      await login(pg, base, TOKENS.viewer);
      const light = await bg();
      await pg.selectOption("[data-role=theme]", "dark");
      check(await pg.getAttribute("html", "data-theme") === "dark", "html[data-theme=dark]");
      const dark = await bg();
      check(dark !== light && dark.match(/\d+/g).slice(0, 3).every((c) => Number(c) < 60), `dark background: ${dark} (light ${light})`);
      await pg.reload();
      await pg.waitForSelector("[data-conn=live]", { timeout: T });
      check(await bg() === dark, "still dark after a reload");
      await pg.selectOption("[data-role=theme]", "auto");
      check(await pg.getAttribute("html", "data-theme") === null, "back to the system's");
      check(await bg() === light, "the system's light colours");
    } finally {
      await ctx.close();
    }
  });

  await step("a schedule error is translated and names its column once", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "da-DK" });
    const pg = await ctx.newPage();
    try {
      await login(pg, base, TOKENS.admin);
      await pg.goto(base + "/jobs/nightly");
      await pg.waitForSelector("#sched-input", { timeout: T });
      await pg.fill("#sched-input", "0 3 99 * *");
      await pg.waitForSelector("[data-role=schedule-error]", { timeout: T });
      const err = (await pg.textContent("[data-role=schedule-error] span")).trim();
      check(err.includes("Tidsplanen er ikke gyldig"), `translated: ${err}`);
      check((err.match(/column|kolonne/gi) ?? []).length === 1, `the column named once: ${err}`);
    } finally {
      await ctx.close();
    }
  });
}

// ---- a11y (issue 16): Run now and its confirm by keyboard alone, no English left in sv/da, the
// job page and list at 390 px in Danish, and the README's screenshots (docs/screenshots/<name>.png
// are copies of $CV_UI_SHOTS/readme-<name>.png).
const I18N = join(dirname(fileURLToPath(import.meta.url)), "../../http/ui/src/i18n.ts");

/** The dashboard's strings per language, read from i18n.ts: { en: { key: text }, sv: …, da: … }. */
function dictionaries() {
  const src = readFileSync(I18N, "utf8");
  const dicts = {};
  for (const lang of ["en", "sv", "da"]) {
    const start = src.search(new RegExp(`const ${lang}(: Dict)? = \\{`));
    const body = src.slice(start, src.indexOf("\n};", start));
    dicts[lang] = Object.fromEntries([...body.matchAll(/(\w+): "((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
  }
  return dicts;
}

/** Every string a person meets on the page: text nodes, and the labels, titles and card labels. */
const pageStrings = (page) => page.evaluate(() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const s = n.textContent.trim();
    if (s && !n.parentElement.closest("script, style")) out.push(s);
  }
  for (const e of document.body.querySelectorAll("[aria-label], [title], [placeholder], [data-label], [alt]"))
    for (const a of ["aria-label", "title", "placeholder", "data-label", "alt"]) {
      const v = e.getAttribute(a)?.trim();
      if (v) out.push(v, v.split(": ")[0]);
    }
  return out;
});

/** A probe card's status word (the badge without its icon). */
const probeState = (page, name) => page.$eval(`[data-probe="${name}"] .badge`,
  (b) => [...b.childNodes].filter((n) => !n.classList?.contains("dot")).map((n) => n.textContent).join("").trim());

/** What sticks out of its box in `scope`: text wider than an element that does not clip or scroll
 * it (scrollWidth > clientWidth), or a box beyond its parent's left or right edge. */
const overflowing = (page, scope) => page.evaluate((scope) => {
  const name = (e) => `${e.tagName.toLowerCase()}${typeof e.className === "string" && e.className ? "." + e.className.trim().split(/\s+/).join(".") : ""}` +
    `${e.dataset.role ? `[data-role=${e.dataset.role}]` : ""}${e.dataset.stat ? `[data-stat=${e.dataset.stat}]` : ""}`;
  const bad = [];
  for (const e of document.querySelectorAll(`${scope}, ${scope} *`)) {
    if (e.closest(".sr-only")) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const st = getComputedStyle(e);
    if (st.overflowX === "visible" && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
      bad.push(`${name(e)}: content ${e.scrollWidth} px in ${e.clientWidth} px ("${e.textContent.trim().slice(0, 40)}")`);
    const p = e.parentElement, q = p.getBoundingClientRect();
    if (getComputedStyle(p).overflowX === "visible" && (r.right > q.right + 1 || r.left < q.left - 1))
      bad.push(`${name(e)} (${Math.round(r.left)}..${Math.round(r.right)}) outside ${name(p)} (${Math.round(q.left)}..${Math.round(q.right)})`);
  }
  return bad;
}, scope);

/** Rows of the job table whose cells do not line up: side by side in a table, each cell of a row
 * spans the row's height (so the bottom borders meet); stacked as cards, each spans the row's
 * width and starts where the cell above it ends. */
const misalignedCells = (page) => page.evaluate(() => {
  const bad = [];
  for (const tr of document.querySelectorAll("table.jobs tr[data-job]")) {
    const cells = [...tr.children].map((td) => ({ td, r: td.getBoundingClientRect() }));
    const stacked = getComputedStyle(cells[0].td).display === "block";
    const off = (a, b) => Math.abs(a - b) > 0.5;
    cells.forEach(({ td, r }, i) => {
      const ref = cells[0].r, prev = cells[i - 1]?.r;
      const what = `${tr.dataset.job} ${td.dataset.role ?? td.dataset.label}`;
      if (stacked && (off(r.left, ref.left) || off(r.right, ref.right) || (prev && off(r.top, prev.bottom))))
        bad.push(`${what}: ${Math.round(r.left)}..${Math.round(r.right)} from ${r.top} (first cell ${Math.round(ref.left)}..${Math.round(ref.right)}, cell above ends ${prev?.bottom})`);
      if (!stacked && (off(r.top, ref.top) || off(r.bottom, ref.bottom)))
        bad.push(`${what}: ${r.top}..${r.bottom}, the row's cells ${ref.top}..${ref.bottom}`);
    });
  }
  return bad;
});

// A job whose time zone is long (the Danish job page at 390 px).
const A11Y_JOBS = `
  - name: zoned
    title: Zoned report
    description: Runs in a time zone with a long name.
    schedule: "30 6 * * 1-5"
    timezone: America/Argentina/Buenos_Aires
    command: "true"
`;

async function a11ySteps(browser, base, d) {
  const h = { Authorization: `Bearer ${TOKENS.admin}` };
  const newPage = async (opts) => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB", ...opts });
    return [ctx, await ctx.newPage()];
  };

  await step("a11y: Run now and its confirm work by keyboard alone; Escape cancels and gives focus back; focus is visible", async () => {
    const [ctx, pg] = await newPage();
    try {
      await login(pg, base, TOKENS.operator);
      await pg.goto(base + "/jobs");
      await pg.waitForSelector("[data-conn=live]", { timeout: T });
      const target = `${row("quick-ok")} [data-action=run-now]`;
      await pg.waitForSelector(target, { timeout: T });
      const triggers = [];
      pg.on("request", (r) => r.method() === "POST" && r.url().includes("/trigger") && triggers.push(r.url()));
      const focused = () => pg.evaluate((sel) => {
        const a = document.activeElement, s = getComputedStyle(a);
        return { target: a === document.querySelector(sel), inDialog: !!a.closest("dialog[open]"), primary: a.matches("button.primary"),
          text: a.textContent.trim(), visible: a.matches(":focus-visible") && s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2,
          ring: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}` };
      }, target);
      let presses = 0;
      for (; !(await focused()).target; presses++) {
        check(presses < 100, `Tab reached the Run now button of quick-ok (at "${(await focused()).text}" after ${presses} presses)`);
        await pg.keyboard.press("Tab");
      }
      let f = await focused();
      check(f.visible, `the focused Run now button has a visible focus ring: ${f.ring}`);
      // a key that opens the confirm: the focus is still on Run now as it is pressed, and the
      // failure says where the focus was if the dialog does not open
      const opens = async (key) => {
        check((await focused()).target, `Run now has the focus before ${key}: ${JSON.stringify(await focused())}`);
        await pg.keyboard.press(key);
        try {
          await pg.waitForSelector("dialog[open]", { timeout: T });
        } catch {
          check(false, `${key} on Run now opened no confirm; focus: ${JSON.stringify(await focused())}, dialogs: ${await pg.locator("dialog").count()}`);
        }
      };
      await opens("Enter");
      f = await focused();
      check(f.inDialog && f.primary && f.visible, `the confirm's Run button has the focus, visibly: ${JSON.stringify(f)}`);
      const seen = new Set();
      for (const key of ["Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab"]) {
        await pg.keyboard.press(key);
        f = await focused();
        check(f.inDialog && f.visible, `after ${key} the focus stays in the dialog, visibly: ${JSON.stringify(f)}`);
        seen.add(f.text);
      }
      check(seen.size === 2, `Tab moves between the dialog's two buttons: ${[...seen]}`);
      await pg.keyboard.press("Escape");
      await pg.waitForSelector("dialog[open]", { state: "detached", timeout: T });
      f = await focused();
      check(f.target && f.visible, `Escape gives the focus back to Run now, visibly: ${JSON.stringify(f)}`);
      check(triggers.length === 0, `Escape started no run: ${triggers}`);
      // the row's badge records every status it shows, so a short RUNNING cannot be missed
      await pg.evaluate((sel) => {
        window.__statuses = [];
        const cell = document.querySelector(sel);
        new MutationObserver(() => window.__statuses.push(cell.querySelector("[data-status]")?.getAttribute("data-status")))
          .observe(cell, { subtree: true, childList: true, attributes: true });
      }, `${row("quick-ok")} td:first-child`);
      await opens("Space");
      await pg.keyboard.press("Enter");
      const toast = await pg.waitForSelector(`${row("quick-ok")} .toast`, { timeout: T });
      const id = /#(\d+)/.exec(await toast.textContent())?.[1];
      check(id && triggers.length === 1, `one run started: ${await toast.textContent()} (${triggers.length} requests)`);
      await pg.waitForSelector(`${row("quick-ok")} [data-run-id="${id}"][data-status=SUCCESS]`, { timeout: T });
      const statuses = await pg.evaluate(() => window.__statuses);
      check(statuses.includes("RUNNING"), `the row showed the run running: ${statuses}`);
      check((await focused()).target, "the focus is back on Run now after confirming");
      await pg.screenshot({ path: join(SHOTS, "a11y-keyboard.png") });
    } finally {
      await ctx.close();
    }
  });

  await step("a11y: the probe states show in Swedish and Danish", async () => {
    const probe = (status) => ({ name: `p-${status}`, type: "exec", status, latency_ms: 3, checked_at: new Date().toISOString(),
      since: null, message: status === "healthy" ? "" : "slow answer", consecutive_failures: 0 });
    const want = { sv: { healthy: "frisk", degraded: "nedsatt", unhealthy: "ej frisk", unknown: "okänd" },
      da: { healthy: "sund", degraded: "nedsat", unhealthy: "usund", unknown: "ukendt" } };
    for (const [lang, locale] of [["sv", "sv-SE"], ["da", "da-DK"]]) {
      const [ctx, pg] = await newPage({ locale });
      try {
        await pg.route("**/api/health", (r) => r.fulfill({ status: 200, contentType: "application/json",
          body: JSON.stringify({ probes: Object.keys(want[lang]).map(probe) }) }));
        await login(pg, base, TOKENS.viewer);
        for (const [status, text] of Object.entries(want[lang])) {
          await pg.waitForSelector(`[data-probe="p-${status}"][data-probe-status=${status}]`, { timeout: T });
          const shown = await probeState(pg, `p-${status}`);
          check(shown === text, `${lang}: ${status} shows "${shown}", not "${text}"`);
        }
      } finally {
        await ctx.close();
      }
    }
  });

  await step("a11y: the sv and da pages (health, jobs, job, runs, run, instances) have no English left", async () => {
    const dicts = dictionaries();
    check(Object.keys(dicts.en).length > 100 && dicts.sv.runNow === "Kör nu", `i18n.ts read: ${Object.keys(dicts.en).length} keys`);
    const runId = (await (await fetch(`${base}/api/jobs/staged-import/runs?limit=1`, { headers: h })).json()).runs[0].id;
    const pages = [["/", "[data-probe=broken-dep]"], ["/jobs", "tr[data-job]"], ["/jobs/staged-import", ".chart [data-points]"],
      ["/runs", "tr[data-run]"], [`/runs/${runId}`, `dl[data-run="${runId}"] [data-role=attempts]`], ["/instances", "tr[data-instance]"]];
    const found = [];
    for (const [lang, locale] of [["sv", "sv-SE"], ["da", "da-DK"]]) {
      // the English of every key this language translates differently; {n} stands for anything
      const english = Object.entries(dicts.en).filter(([k, v]) => dicts[lang][k] !== v && /[a-z]{2}/i.test(v))
        .map(([k, v]) => [k, new RegExp(`^${v.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{\w+\}/g, ".+")}$`)]);
      const [ctx, pg] = await newPage({ locale });
      try {
        await login(pg, base, TOKENS.admin);
        for (const [path, ready] of pages) {
          await pg.goto(base + path);
          await pg.waitForSelector("[data-conn=live]", { timeout: T });
          await pg.waitForSelector(ready, { timeout: T });
          check(await pg.getAttribute("html", "lang") === lang, `${lang}: the page's language`);
          for (const s of new Set(await pageStrings(pg)))
            for (const [k, re] of english) if (re.test(s)) found.push(`${lang} ${path}: "${s}" (${k})`);
        }
        await pg.goto(base + "/");
        await pg.waitForSelector("[data-probe=broken-dep]", { timeout: T });
        const [broken, store] = [await probeState(pg, "broken-dep"), await probeState(pg, "store")];
        check(broken === dicts[lang].pr_unhealthy && store === dicts[lang].pr_healthy, `${lang}: the daemon's own probes: ${broken}, ${store}`);
      } finally {
        await ctx.close();
      }
    }
    check(found.length === 0, `${found.length} English strings: ${found.slice(0, 12).join("; ")}`);
  });

  await step("a11y: at 390 px in Danish nothing on the job page or the job list runs out of its box, and the action cells line up", async () => {
    writeFileSync(join(d.dir, "cronvisor.yaml"), CONFIG(d.dir) + DETAIL_JOBS + A11Y_JOBS);
    const r = await fetch(`${base}/api/reload`, { method: "POST", headers: h });
    check(r.status === 200, `reload: ${r.status} ${await r.text()}`);
    const run = await fetch(`${base}/api/jobs/zoned/trigger`, { method: "POST", headers: h });
    check(run.status === 202, `trigger zoned: ${run.status}`);
    const runId = (await run.json()).run_id;
    const [ctx, pg] = await newPage({ locale: "da-DK", viewport: { width: 390, height: 844 } });
    const found = [];
    try {
      await login(pg, base, TOKENS.admin);
      for (const [path, ready] of [["/jobs", row("zoned")], ["/jobs/staged-import", ".chart [data-points]"],
        ["/jobs/zoned", `tr[data-run="${runId}"] [data-status=SUCCESS]`]]) {
        await pg.goto(base + path);
        await pg.waitForSelector("[data-conn=live]", { timeout: T });
        await pg.waitForSelector(ready, { timeout: T });
        found.push(...(await overflowing(pg, "main")).map((x) => `${path}: ${x}`));
        const wide = await pg.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
        if (wide > 0) found.push(`${path}: the page scrolls sideways by ${wide} px`);
      }
      check(await pg.textContent("[data-stat=timezone]") === "America/Argentina/Buenos_Aires", "the job's long zone is shown");
      await pg.screenshot({ path: join(SHOTS, "readme-phone.png") });
      const bad = [];
      for (const width of [390, 1280]) {
        await pg.setViewportSize({ width, height: 844 });
        await pg.goto(base + "/jobs");
        await pg.waitForSelector(`${row("zoned")} [data-action=run-now]`, { timeout: T });
        bad.push(...(await misalignedCells(pg)).map((x) => `${width} px: ${x}`));
      }
      check(found.length === 0, `${found.length} boxes overflow: ${found.slice(0, 8).join("; ")}`);
      check(bad.length === 0, `${bad.length} cells out of line: ${bad.slice(0, 4).join("; ")}`);
    } finally {
      await ctx.close();
    }
  });

  await step("a11y: the README's screenshots: the Runs page, a run's progress bar, dark colours, a phone", async () => {
    const trig = async (job) => {
      const r = await fetch(`${base}/api/jobs/${job}/trigger`, { method: "POST", headers: h });
      check(r.status === 202, `trigger ${job}: ${r.status}`);
      return (await r.json()).run_id;
    };
    const chatty = await trig("chatty");
    const [ctx, pg] = await newPage({ viewport: { width: 1280, height: 800 } });
    const [dctx, dark] = await newPage({ viewport: { width: 1280, height: 800 }, colorScheme: "dark" });
    let slow;
    try {
      await login(pg, base, TOKENS.operator);
      await pg.goto(base + "/runs");
      await pg.waitForSelector(`tr[data-run="${chatty}"]`, { timeout: T }); // running, mostly (it prints for 9 s)
      await pg.screenshot({ path: join(SHOTS, "readme-runs.png") });
      await login(dark, base, TOKENS.operator);
      await dark.waitForSelector(`${row("chatty")} [data-run-id="${chatty}"]`, { timeout: T }); // running, mostly
      check(await dark.evaluate(() => getComputedStyle(document.documentElement).backgroundColor) === "rgb(13, 17, 23)", "dark colours");
      await dark.screenshot({ path: join(SHOTS, "readme-dark.png") });
      slow = await trig("slow-import");
      await pg.goto(`${base}/runs/${slow}`);
      await pg.waitForFunction(() => Number(document.querySelector("[data-role=progress] progress")?.value) >= 0.05, null, { timeout: T });
      await pg.screenshot({ path: join(SHOTS, "readme-run-progress.png") });
    } finally {
      if (slow) await fetch(`${base}/api/runs/${slow}/cancel`, { method: "POST", headers: h });
      await ctx.close();
      await dctx.close();
    }
  });
}

async function main() {
  if (!existsSync(CHROMIUM)) {
    console.log(`skip: no chromium at ${CHROMIUM}`);
    return SKIP;
  }
  mkdirSync(SHOTS, { recursive: true });
  const d = startDaemon();
  let browser;
  try {
    const port = await d.port;
    const base = `http://127.0.0.1:${port}`;
    const probe = await fetch(`${base}/api/jobs`, { headers: { Authorization: `Bearer ${TOKENS.viewer}` } });
    if (probe.status === 404) {
      console.log("skip: this daemon has no REST API (/api/jobs is 404)");
      return SKIP;
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      // playwright gives every launch a fresh temporary --user-data-dir of its own.
    });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
    const page = await ctx.newPage();
    const consoleErrors = [];
    page.on("pageerror", (e) => consoleErrors.push(String(e)));

    await step("the login screen asks for a token and refuses a wrong one", async () => {
      await page.goto(base + "/");
      await page.waitForSelector("#token");
      await page.screenshot({ path: join(SHOTS, "login.png") });
      await page.fill("#token", "not-a-token");
      await page.click("button[type=submit]");
      await page.waitForSelector("[role=alert]", { timeout: T });
      check(await page.isVisible("#token"), "still on the login screen");
    });

    await step("an admin signs in and sees the role", async () => {
      await login(page, base, TOKENS.admin);
      const role = await page.textContent("[data-role=role]");
      check(/admin/.test(role), `role shown is "${role}"`);
      check(await page.evaluate(() => sessionStorage.getItem("cronvisor.token")) === TOKENS.admin, "token kept in sessionStorage");
      check(await page.evaluate(() => localStorage.getItem("cronvisor.token")) === null, "token not in localStorage");
    });

    await step("the health grid shows every probe with its status, and the config's links", async () => {
      await page.waitForSelector('[data-probe="broken-dep"]', { timeout: T });
      await page.waitForSelector('[data-probe="store"]', { timeout: T });
      const broken = await page.textContent('[data-probe="broken-dep"]');
      check(broken.includes("unhealthy") && broken.includes("exit 2"), `broken probe card: ${broken}`);
      const store = await page.textContent('[data-probe="store"]');
      check(store.includes("healthy"), `store probe card: ${store}`);
      await page.click('[data-probe="store"] button');
      await page.waitForSelector('[data-probe="store"] button:not([disabled])', { timeout: T });
      check(!(await page.textContent('[data-probe="store"]')).includes("error"), "refresh answered");
      check((await page.textContent("body")).includes("Runbook"), "the configured link is listed");
    });

    await step("the list shows every job with its status", async () => {
      for (const name of ["quick-ok", "always-fails", "chatty", "nightly", "billing"])
        check(await page.isVisible(row(name)), `row for ${name}`);
      check(await statusOf(page, "quick-ok") === "NEVER", "quick-ok never ran");
      check(/^7\b/.test(await page.textContent("[data-role=job-count]")), "the page counts every job");
      const sched = await page.textContent(`${row("billing")} td:nth-child(3)`);
      check(sched.includes("At 04:00 on the 1st of every month"), `schedule_human wins: ${sched}`);
      const nightly = await page.textContent(`${row("nightly")} td:nth-child(3)`);
      check(/03:00|3:00 AM/.test(nightly) && nightly.includes("0 3 * * *"), `schedule in words beside the cron text: ${nightly}`);
    });

    await step("Run now asks to confirm, shows running, then success, without a reload", async () => {
      await page.evaluate(() => { window.__noReload = true; });
      await runNow(page, "quick-ok");
      await waitStatus(page, row("quick-ok"), "RUNNING");
      await page.screenshot({ path: join(SHOTS, "overview.png"), fullPage: true });
      await waitStatus(page, row("quick-ok"), "SUCCESS");
      const cell = await page.textContent(`${row("quick-ok")} td:nth-child(4)`);
      check(cell.includes("7"), `items processed shown: ${cell}`);
      check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
    });

    await step("a failing job turns red and shows its error", async () => {
      await runNow(page, "always-fails");
      await waitStatus(page, row("always-fails"), "FAILED");
      await page.waitForSelector(`${row("always-fails")} [data-role=last-error]`, { timeout: T });
      const err = await page.textContent(`${row("always-fails")} [data-role=last-error]`);
      check(err.length > 0, "error text");
      const color = await page.$eval(`${row("always-fails")} .dot`, (e) => getComputedStyle(e).backgroundColor);
      check(/rgb\((207|255), (34|123), (46|114)\)/.test(color), `red dot, got ${color}`);
      const failedCard = await page.textContent("[data-card=failed] .card-value");
      check(Number(failedCard) >= 1, `failed card counts it: ${failedCard}`);
    });

    await runsPageSteps(page, base); // the Runs page (issue 16); the cards open it

    await step("a chained run's page names the run that started it, whose page links back to it", async () => {
      const h = { Authorization: `Bearer ${TOKENS.admin}` };
      const parent = (await (await fetch(`${base}/api/jobs/always-fails/runs?limit=1`, { headers: h })).json()).runs[0].id;
      let child; // always-fails' on_failure fired nightly with trigger chain:<parent>
      for (const t0 = Date.now(); !child; await new Promise((r) => setTimeout(r, 100))) {
        child = (await (await fetch(`${base}/api/runs?trigger=chain:${parent}`, { headers: h })).json()).runs[0];
        check(child || Date.now() - t0 < T, `no run with trigger chain:${parent}`);
      }
      check(child.job === "nightly", `the chained job: ${child.job}`);
      await page.goto(`${base}/runs/${child.id}`);
      const from = await page.waitForSelector(`dl[data-run="${child.id}"] [data-role=chained-from]`, { timeout: T });
      check((await from.textContent()) === `run #${parent} of job always-fails`, `started by: ${await from.textContent()}`);
      await from.click();
      await page.waitForSelector(`dl[data-run="${parent}"] [data-role=chained] a[href="/runs/${child.id}"]`, { timeout: T });
      check((await page.textContent(`dl[data-run="${parent}"] [data-role=chained]`)).includes(`nightly #${child.id}`), "the started run listed");
      await page.screenshot({ path: join(SHOTS, "run-chain.png"), fullPage: true });
      await page.goto(base + "/");
      await page.waitForSelector("tr[data-job]", { timeout: T });
    });

    await step("the live log shows lines while the job prints them", async () => {
      await runNow(page, "chatty");
      const toast = await page.waitForSelector(`${row("chatty")} .toast`, { timeout: T });
      const id = /#(\d+)/.exec(await toast.textContent())[1];
      await page.click(`a[href="/jobs/chatty"]`);
      await page.waitForSelector(`tr[data-run="${id}"]`, { timeout: T });
      await page.click(`tr[data-run="${id}"] a`);
      await page.waitForSelector(`dl[data-run="${id}"]`, { timeout: T });
      const host = (await page.textContent(`dl[data-run="${id}"] [data-role=run-host]`))?.trim();
      check(host === hostname(), `the run's host is shown: "${host}", expected "${hostname()}"`);
      await page.waitForFunction(() => /exported batch ([3-9]|1\d)\b/.test(document.querySelector("[data-role=output]")?.textContent ?? "")
        && document.querySelector("dl[data-run]")?.getAttribute("data-status") === "RUNNING", null, { timeout: T });
      await page.screenshot({ path: join(SHOTS, "run-live.png"), fullPage: true });
      await page.waitForSelector(`dl[data-run="${id}"][data-status=SUCCESS]`, { timeout: T });
      const out = await page.textContent("[data-role=output]");
      check(out.includes("exported batch 30"), "the whole output at the end");
      await page.screenshot({ path: join(SHOTS, "run.png"), fullPage: true });
    });

    await step("an invalid schedule shows its error and column; a valid one its next fires; saving moves the next run", async () => {
      await page.goto(base + "/jobs/nightly");
      await page.waitForSelector("#sched-input", { timeout: T });
      const before = await page.getAttribute(".job-head time", "datetime");
      await page.fill("#sched-input", "0 25 * * *");
      await page.waitForSelector("[data-role=schedule-error]", { timeout: T });
      const err = await page.textContent("[data-role=schedule-error]");
      check(/Column 3/.test(err), `error names column 3: ${err}`);
      // minutes 7, 27, 47: never 03:00:00, the configured next fire (*/20 met it daily from 02:40)
      await page.fill("#sched-input", "7,27,47 * * * *");
      await page.waitForFunction(() => document.querySelectorAll("[data-role=next-fires] li").length === 5, null, { timeout: T });
      await page.click("[data-role=schedule-editor] button[type=submit]");
      await page.waitForFunction((b) => {
        const t = document.querySelector(".job-head time")?.getAttribute("datetime");
        return t && t !== b;
      }, before, { timeout: T });
      const after = await page.getAttribute(".job-head time", "datetime");
      check(Date.parse(after) - Date.now() <= 20 * 60e3 + 5000, `next run within 20 minutes: ${after}`);
      await page.waitForSelector("[data-role=overrides]", { timeout: T });
      await page.screenshot({ path: join(SHOTS, "job.png"), fullPage: true });
    });

    await step("a locked job's editor is disabled with the reason", async () => {
      await page.goto(base + "/jobs/billing");
      await page.waitForSelector("#sched-input", { timeout: T });
      check(await page.isDisabled("#sched-input"), "input disabled");
      check(/Locked/.test(await page.textContent("[data-role=disabled-reason]")), "reason shown");
    });

    await step("the job list searches names and titles on the server", async () => {
      await page.goto(base + "/jobs");
      await page.waitForSelector(row("quick-ok"), { timeout: T });
      await page.fill("[data-role=job-search]", "BILLING");
      await page.press("[data-role=job-search]", "Enter");
      await page.waitForFunction(() => document.querySelectorAll("tr[data-job]").length === 1, null, { timeout: T });
      check(await page.isVisible(row("billing")), "the job whose title matches");
      check(/^1\b/.test(await page.textContent("[data-role=job-count]")), "counted");
      await page.fill("[data-role=job-search]", "");
      await page.press("[data-role=job-search]", "Enter");
      await page.waitForFunction(() => document.querySelectorAll("tr[data-job]").length === 7, null, { timeout: T });
    });

    await step("the job list works at phone width", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(base + "/jobs");
      await page.waitForSelector(row("quick-ok"), { timeout: T });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 1, `no horizontal scroll (${overflow}px)`);
      await page.screenshot({ path: join(SHOTS, "jobs-phone.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await step("the instances view lists this daemon alone (SQLite) with what it runs, live, also at phone width", async () => {
      await page.goto(base + "/");
      await page.waitForSelector("[data-conn=live]", { timeout: T });
      await page.click('nav a[href="/instances"]');
      await page.waitForSelector("tr[data-instance][data-self=true]", { timeout: T });
      check(await page.locator("tr[data-instance]").count() === 1, "one instance on the embedded store");
      const me = await page.textContent("tr[data-self=true]");
      check(me.includes("this instance") && /pid \d+/.test(me), `this instance marked with its pid: ${me}`);
      check(await page.getAttribute("table.instances", "data-shared") === "false", "not a shared store");
      check((await page.textContent("tr[data-self=true] [data-role=running]")).includes("idle"), "idle at first");
      // A run started elsewhere (the API) shows up in the running column, then leaves it: events only.
      await page.evaluate(() => { window.__noReload = true; });
      const r = await fetch(`${base}/api/jobs/quick-ok/trigger`, { method: "POST", headers: { Authorization: `Bearer ${TOKENS.admin}` } });
      check(r.status === 202, `trigger: ${r.status}`);
      const id = (await r.json()).run_id;
      await page.waitForSelector(`tr[data-self=true] [data-role=running] li[data-run="${id}"]`, { timeout: T });
      check((await page.textContent(`li[data-run="${id}"]`)).includes(`quick-ok #${id}`), "job and run id shown");
      check(await page.getAttribute(`li[data-run="${id}"] a`, "href") === `/runs/${id}`, "links to the run");
      await page.screenshot({ path: join(SHOTS, "instances.png"), fullPage: true });
      await page.waitForSelector(`li[data-run="${id}"]`, { state: "detached", timeout: T });
      check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForSelector("tr[data-self=true]", { timeout: T });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 1, `no horizontal scroll (${overflow}px)`);
      check(await page.isVisible("tr[data-self=true] [data-role=self]"), "the marker is visible on a phone");
      await page.screenshot({ path: join(SHOTS, "instances-phone.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await step("a lost connection is shown, and events missed meanwhile arrive after reconnecting", async () => {
      await page.goto(base + "/jobs");
      await page.waitForSelector("[data-conn=live]", { timeout: T });
      await page.waitForSelector(row("always-fails"), { timeout: T }); // the list is loaded
      await ctx.setOffline(true); // blocks the reconnection until we allow it
      await page.evaluate(() => window.__cronvisor.drop());
      await page.waitForSelector("[data-conn=lost]", { timeout: T });
      await page.screenshot({ path: join(SHOTS, "connection-lost.png") });
      const r = await fetch(`${base}/api/jobs/always-fails/trigger`, { method: "POST", headers: { Authorization: `Bearer ${TOKENS.admin}` } });
      check(r.status === 202, `trigger while disconnected: ${r.status}`);
      const runId = (await r.json()).run_id;
      await ctx.setOffline(false);
      await page.waitForSelector("[data-conn=live]", { timeout: 30000 });
      await page.waitForSelector(`${row("always-fails")} [data-run-id="${runId}"][data-status=FAILED]`, { timeout: T });
    });

    await step("a list that failed to load while the network was gone loads when the connection is back", async () => {
      // The page's own list request fails as with no network (the overview's counts still load).
      const listOnly = (u) => u.pathname === "/api/jobs" && !u.searchParams.has("status");
      let aborted = 0;
      await page.route(listOnly, (r) => { aborted++; return r.abort("internetdisconnected"); });
      await page.goto(base + "/jobs");
      await page.waitForSelector("[data-conn=live]", { timeout: T });
      await page.waitForSelector("p.error-text[role=alert]", { timeout: T });
      check(aborted >= 1 && await page.locator("tr[data-job]").count() === 0, `no rows without the list (${aborted} aborted)`);
      await page.unroute(listOnly);
      await page.evaluate(() => window.__cronvisor.drop());
      await page.waitForSelector(row("always-fails"), { timeout: 30000 });
      check(await page.locator("p.error-text[role=alert]").count() === 0, "the error is gone");
    });

    await step("a viewer cannot trigger or edit", async () => {
      const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const vp = await vctx.newPage();
      await login(vp, base, TOKENS.viewer);
      check(/viewer/.test(await vp.textContent("[data-role=role]")), "role shown");
      check(await vp.locator("[data-action=run-now]").count() === 0, "no Run now buttons");
      check(await vp.isDisabled(`${row("nightly")} input[role=switch]`), "enable switch disabled");
      await vp.goto(base + "/jobs/nightly");
      await vp.waitForSelector("#sched-input", { timeout: T });
      check(await vp.isDisabled("#sched-input"), "schedule editor disabled");
      const r = await vp.evaluate(async (tok) => (await fetch("/api/jobs/quick-ok/trigger", { method: "POST", headers: { Authorization: `Bearer ${tok}` } })).status, TOKENS.viewer);
      check(r === 403, `the API refuses a viewer's trigger: ${r}`);
      await vctx.close();
    });

    await step("a degraded store shows a banner with the spooled count", async () => {
      // The daemon here runs on SQLite: /readyz is answered as a PostgreSQL daemon in an outage
      // would answer it (its own page, so the 503 is not counted as a script error).
      const sctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const sp = await sctx.newPage();
      await sp.route("**/readyz", (r) => r.fulfill({
        status: 503, contentType: "application/json",
        body: JSON.stringify({ error: { code: "store_degraded", message: "the store is degraded" },
                               status: "degraded", store: "degraded", spooled: 42 }),
      }));
      await login(sp, base, TOKENS.viewer);
      await sp.waitForSelector("[data-store=degraded]", { timeout: T });
      check(/42/.test(await sp.textContent("[data-store=degraded]")), "the spooled count is shown");
      await sp.screenshot({ path: join(SHOTS, "store-degraded.png") });
      await sctx.close();
    });

    await step("a reload's added job appears in the open list and its removed one disappears, without navigation", async () => {
      await page.goto(base + "/jobs");
      await page.waitForSelector("[data-conn=live]", { timeout: T });
      await page.waitForSelector(row("chatty"), { timeout: T });
      await page.evaluate(() => { window.__noReload = true; });
      const url = page.url();
      // chatty goes, added-by-reload comes: the rest of the configuration is unchanged.
      const next = CONFIG(d.dir).replace(/  - name: chatty\n(    .*\n)+?(?=  - name: )/, "") + `  - name: added-by-reload
    title: Added by reload
    schedule: manual
    command: "true"
`;
      check(!next.includes("chatty") && next.includes("added-by-reload"), "the new configuration");
      writeFileSync(join(d.dir, "cronvisor.yaml"), next);
      d.proc.kill("SIGHUP");
      await page.waitForSelector(row("added-by-reload"), { timeout: T });
      await page.waitForSelector(row("chatty"), { state: "detached", timeout: T });
      check((await page.textContent(row("added-by-reload"))).includes("Added by reload"), "the new job's title");
      check(await page.locator("tr[data-job]").count() === 7, "the other jobs stay");
      check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
      check(page.url() === url, `still on ${url}`);
      // config.reloaded arrives after job.added / job.removed: its summary is shown in a notice.
      await page.waitForSelector("[data-role=reload-notice]", { timeout: T });
      const summary = await page.textContent("[data-role=reload-summary]");
      check(/jobs \+1 -1/.test(summary), `the reload's summary is shown: "${summary}"`);
      check((await page.textContent("[data-role=reload-notice]")).includes("Configuration reloaded"), "the notice says what happened");
      await page.screenshot({ path: join(SHOTS, "jobs-after-reload.png"), fullPage: true });
      await page.click("[data-role=reload-notice] button");
      await page.waitForSelector("[data-role=reload-notice]", { state: "detached", timeout: T });
    });

    await step("a monitored job shows a ping badge with its URL, no Run now, and its pinged run live", async () => {
      await page.goto(base + "/");
      await page.waitForSelector(`${row("remote-backup")} [data-role=ping]`, { timeout: T });
      check((await page.textContent(`${row("remote-backup")} [data-role=ping]`)).includes("/ping/remote-backup"), "ping URL shown");
      check(await page.locator(`${row("remote-backup")} [data-action=run-now]`).count() === 0, "no Run now");
      check(!(await page.content()).includes(PING_KEY), "the key is never on the page");
      const r = await fetch(`${base}/ping/remote-backup`, { method: "POST", headers: { "X-Ping-Key": PING_KEY }, body: "backup ok" });
      check(r.status === 202, `ping accepted: ${r.status}`);
      await waitStatus(page, row("remote-backup"), "SUCCESS");
      await page.screenshot({ path: join(SHOTS, "ping-job.png") });
    });

    await step("behind the proxy a person is signed in without a token and named in the audit", async () => {
      const pctx = await browser.newContext({ viewport: { width: 1280, height: 900 },
        extraHTTPHeaders: { "X-Forwarded-Email": "eve@example.com", "X-Forwarded-Role": "operator" } });
      const pp = await pctx.newPage();
      await pp.goto(base + "/");
      await pp.waitForSelector("[data-conn=live]", { timeout: T });
      await pp.waitForSelector("tr[data-job]", { timeout: T });
      check(/operator/.test(await pp.textContent("[data-role=role]")), "role from the role header");
      await runNow(pp, "quick-ok");
      await pp.goto(base + "/jobs/quick-ok");
      await pp.waitForFunction(() => document.body.textContent.includes("user:eve@example.com"), null, { timeout: T });
      await pp.screenshot({ path: join(SHOTS, "proxy-person.png") });
      await pctx.close();
    });

    await step("an open page makes no API request while a job fires every second: the events carry the state", async () => {
      const h = { Authorization: `Bearer ${TOKENS.admin}` };
      const lastRun = async () => (await (await fetch(`${base}/api/jobs/ticker/runs?limit=1`, { headers: h })).json()).runs[0];
      const setTicker = async (on) => {
        const r = await fetch(`${base}/api/jobs/ticker/${on ? "enable" : "disable"}`, { method: "POST", headers: h });
        check(r.status === 200, `ticker ${on ? "enabled" : "disabled"}: ${r.status}`);
      };
      for (const where of ["/", "/jobs/ticker"]) {
        await page.goto(base + where);
        await page.waitForSelector("[data-conn=live]", { timeout: T });
        await page.waitForSelector(where === "/" ? row("ticker") : "header.job-head[data-job=ticker]", { timeout: T });
        await page.waitForLoadState("networkidle", { timeout: T }); // the navigation's own reads are done
        const asked = [];
        const onRequest = (r) => {
          const u = new URL(r.url());
          if (u.pathname.startsWith("/api/") && u.pathname !== "/api/events") asked.push(`${r.method()} ${u.pathname}${u.search}`);
        };
        page.on("request", onRequest);
        const from = (await lastRun())?.id ?? 0;
        await setTicker(true);
        let last;
        for (const end = Date.now() + 60000; ; ) { // ten runs of the ticker end (read outside the page)
          last = await lastRun();
          if (last && last.id >= from + 10 && last.finished_at) break;
          check(Date.now() < end, `ten ticker runs in 60 s (last: ${JSON.stringify(last)})`);
          await new Promise((r) => setTimeout(r, 200));
        }
        await setTicker(false);
        // the page shows the tenth run: it follows the events
        if (where === "/")
          await page.waitForFunction((id) => Number(document.querySelector('tr[data-job="ticker"] [data-run-id]')?.getAttribute("data-run-id")) >= id, last.id, { timeout: T });
        else
          await page.waitForSelector(`tr[data-run="${last.id}"] [data-status=SUCCESS]`, { timeout: T });
        page.off("request", onRequest);
        check(asked.length === 0, `${where}: ${asked.length} API requests during ${last.id - from} runs: ${asked.slice(0, 5).join(", ")}`);
      }
    });

    await detailSteps(browser, base, d); // uidetail

    await polishSteps(browser, base);

    await step("Run now on a disabled job says in its confirm that the job is disabled", async () => {
      const h = { Authorization: `Bearer ${TOKENS.admin}` };
      const r = await fetch(`${base}/api/jobs/nightly/disable`, { method: "POST", headers: h });
      check(r.status === 200, `disable: ${r.status}`);
      try {
        await page.goto(base + "/jobs/nightly");
        await page.waitForSelector(".job-head [data-action=run-now]", { timeout: T });
        await page.waitForFunction(() => document.querySelector(".job-head input[role=switch]")?.checked === false, null, { timeout: T });
        await page.click(".job-head [data-action=run-now]");
        const note = await page.waitForSelector("dialog[open] [data-role=disabled-note]", { timeout: T });
        check(/disabled/.test(await note.textContent()), `the note: ${await note.textContent()}`);
        await page.click("dialog[open] button:not(.primary)");
        await page.goto(base + "/jobs/quick-ok");
        await page.click(".job-head [data-action=run-now]");
        await page.waitForSelector("dialog[open]", { timeout: T });
        check(await page.locator("dialog[open] [data-role=disabled-note]").count() === 0, "no note for an enabled job");
        await page.click("dialog[open] button:not(.primary)");
      } finally {
        await fetch(`${base}/api/jobs/nightly/enable`, { method: "POST", headers: h });
      }
    });

    await tzSteps(browser, base); // tz: the zone edited with the schedule, the zone switch
    await a11ySteps(browser, base, d); // a11y (issue 16)

    await step("no script errors on the page", async () => {
      check(consoleErrors.length === 0, consoleErrors.join("; "));
    });
  } catch (e) {
    failures++;
    console.log(`FAIL setup: ${e.message}`);
  } finally {
    await browser?.close().catch(() => {});
    d.proc.kill("SIGTERM");
    await new Promise((r) => (d.proc.exitCode !== null ? r() : d.proc.on("exit", r)));
    if (failures) console.log(`--- daemon log ---\n${d.log().slice(-4000)}`);
    rmSync(d.dir, { recursive: true, force: true });
  }
  console.log(failures ? `${failures} failed` : "all passed");
  return failures ? 1 : 0;
}

process.exit(await main());
