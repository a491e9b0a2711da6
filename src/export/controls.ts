/**
 * The characters a SIEM format must not carry raw: they end a line for some reader (syslog
 * relays, Java's line readers and JavaScript split on VT, FF, NEL, U+2028, U+2029 as well as CR
 * and LF), cut a C string short (NUL), or drive the terminal the export is read on (ESC, and the
 * C1 codes an 8-bit terminal takes for CSI and OSC).
 *
 * Every C0 control but TAB, DEL (U+007F), every C1 control (U+0080–U+009F, NEL U+0085 among them),
 * LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029). TAB stays: it breaks no line and
 * moves no cursor anywhere but along the line. CR and LF are left to each format, which has its
 * own rule for them (CEF escapes them as `\r` and `\n`).
 *
 * Text formats (CEF, CSV) replace each of them with U+FFFD REPLACEMENT CHARACTER: neither format
 * has an escape for an arbitrary character (`\u001b` or `\x1b` in a CEF value would read as the
 * data `\u001b`), and U+FFFD is the character Unicode gives for "a character was here that could
 * not be shown"; one code unit for one, so a value's length is kept. The exact characters stay in
 * the JSONL export, the stored lines themselves, which every exported row names by `seq` and id.
 * JSON (OCSF, and JSON text inside CSV and CEF values) escapes them as `\uXXXX` instead, which
 * reads back as the very same string.
 *
 * @example
 * ```ts
 * import { escapeJsonControls, replaceControls } from "./controls.ts";
 * replaceControls("\u001b[2Jred\u2028x"); // "\ufffd[2Jred\ufffdx"
 * escapeJsonControls(JSON.stringify("a\u2028b")); // "\"a\\u2028b\""
 * ```
 *
 * @module
 */

/** What text formats put in place of a control character. */
export const REPLACEMENT = "\ufffd";

// C0 but TAB, LF, CR; DEL; C1; LS; PS.
// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/g;
// C0 but TAB, and the rest as above: nothing in a CSV cell may end its line.
// deno-lint-ignore no-control-regex
const CONTROLS_AND_LINE_BREAKS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;
// What `JSON.stringify` and RFC 8785 leave raw (they escape C0 already).
const JSON_RAW = /[\u007f-\u009f\u2028\u2029]/g;

/**
 * `text` with every control character but TAB, CR and LF replaced by U+FFFD, or with CR and LF
 * replaced too when `lineBreaks` is `"replace"`.
 */
export function replaceControls(text: string, lineBreaks: "keep" | "replace" = "keep"): string {
  return text.replace(lineBreaks === "keep" ? CONTROLS : CONTROLS_AND_LINE_BREAKS, REPLACEMENT);
}

function jsonEscape(c: string): string {
  return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
}

/**
 * JSON text with DEL, the C1 controls, U+2028 and U+2029 written as `\uXXXX` escapes. Valid only
 * for JSON text (`JSON.stringify`'s or canonical), where such a character can stand only inside a
 * string: the escape reads back as the same character, so the value is unchanged.
 */
export function escapeJsonControls(json: string): string {
  return json.replace(JSON_RAW, jsonEscape);
}
