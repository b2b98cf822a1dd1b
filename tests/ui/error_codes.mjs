// Every error code the server can answer with has a translated message in each of the dashboard's
// languages (http/ui/src/errors.json): collects the codes from the C sources of http/ (the code
// argument of api_reply_error / api__reply_error_with / the WebSocket's queue_error, "code" in a
// json_pack or a literal JSON body, and the literals a `const char *code = ...;` picks from) and
// fails naming each code a language lacks. Also fails when a code is passed in a form it cannot
// read (a variable), so a new way of replying cannot slip past it.
//
// usage: node error_codes.mjs <source dir>
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = process.argv[2] ?? ".";
const LANGS = ["en", "sv", "da"];
const CLIENT_CODES = ["network", "http"]; // made by api.ts itself (no answer; no JSON body)

function cFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...cFiles(p));
    else if (e.name.endsWith(".c")) out.push(p);
  }
  return out;
}

export function serverCodes(src, where, problems) {
  const codes = new Set();
  const lit = /^"([a-z][a-z0-9_]*)"$/;
  // calls: the code is the 3rd argument (api_*), the 2nd (queue_error, error_body's 1st)
  const CALLS = /\b(api_reply_error|api__reply_error_with|api__req_abandon|queue_error|error_body)\s*\(([^;]*?)\)\s*[;{]/gs;
  for (const m of src.matchAll(CALLS)) {
    const args = m[2].split(",").map((s) => s.trim());
    const arg = args[m[1] === "queue_error" ? 1 : m[1] === "error_body" ? 0 : 2] ?? "";
    if (/^const char \*/.test(arg)) continue; // the definition
    if (arg === "code" && /^api_reply_error$|^api__reply_error_with$|^error_body$/.test(m[1])) continue; // forwarding its own parameter
    const l = lit.exec(arg);
    if (l) codes.add(l[1]);
    else problems.push(`${where}: ${m[1]} with a code that is not a literal: ${arg}`);
  }
  for (const m of src.matchAll(/"code",\s*([^,)]+)/g)) {
    const arg = m[1].trim();
    const l = lit.exec(arg);
    if (l) codes.add(l[1]);
    else if (!/^(code|api__json_text\(code)/.test(arg)) problems.push(`${where}: "code" set from ${arg}`);
  }
  for (const m of src.matchAll(/\\"code\\":\s*\\"([a-z][a-z0-9_]*)\\"/g)) codes.add(m[1]);
  for (const m of src.matchAll(/const char \*code\s*=([^;]*);/gs))
    for (const l of m[1].matchAll(/"([a-z][a-z0-9_]*)"/g)) codes.add(l[1]);
  return codes;
}

const problems = [];
const codes = new Set(CLIENT_CODES);
for (const f of cFiles(join(root, "http")))
  for (const c of serverCodes(readFileSync(f, "utf8"), relative(root, f), problems)) codes.add(c);
if (codes.size < 20 + CLIENT_CODES.length) problems.push(`only ${codes.size} codes found: the scanner is broken`);

const dict = JSON.parse(readFileSync(join(root, "http/ui/src/errors.json"), "utf8"));
for (const lang of LANGS) {
  const d = dict[lang] ?? {};
  for (const c of [...codes].sort()) {
    const s = d[c];
    if (typeof s !== "string" || !s.trim()) problems.push(`${lang}: no message for the error code "${c}"`);
  }
  for (const k of Object.keys(d)) if (!codes.has(k)) problems.push(`${lang}: "${k}" is no longer an error code the server answers`);
}
for (const lang of LANGS.slice(1))
  for (const c of codes) if (dict[lang]?.[c] && dict[lang][c] === dict.en[c]) problems.push(`${lang}: "${c}" is still the English text`);

if (problems.length) {
  console.log(problems.join("\n"));
  console.log(`${problems.length} problems (${codes.size} codes)`);
  process.exit(1);
}
console.log(`ok: ${codes.size} error codes, each translated in ${LANGS.join(", ")}`);
