// The server's error codes in words, in the user's language (errors.json; tests/ui/error_codes.mjs
// fails when a code the C sources answer with has no message in a language). The server's own
// message is English detail: shown after the translated text when it adds something.
import ERRORS from "./errors.json";
import { currentLang } from "./i18n";

type Table = Record<string, string>;
const TABLES = ERRORS as Record<string, Table>;

/** The translated text for code (http_NNN: the generic "http"), with the server's detail. A
 * schedule error's "(column N)" is dropped: the editor shows the column itself. */
export function errorText(code: string, detail: string, column?: number): string {
  const key = /^http_\d+$/.test(code) ? "http" : code;
  const table = TABLES[currentLang()] ?? TABLES.en;
  const text = table[key] ?? TABLES.en[key];
  let d = (detail ?? "").trim();
  if (column) d = d.replace(new RegExp(`\\s*\\(column ${column}\\)$`), "");
  if (!text) return d || code;
  if (!d || d.toLowerCase() === text.toLowerCase().replace(/\.$/, "")) return text;
  return `${text.replace(/\.$/, "")}: ${d}`;
}
