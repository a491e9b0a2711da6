import assert from "node:assert/strict";
import { escapeJsonControls, replaceControls, REPLACEMENT } from "./controls.ts";
import { CONTROL_TEXTS, RAW_CONTROL } from "./testdata/records.ts";

Deno.test("every C0 control but TAB, CR and LF, DEL, C1, U+2028 and U+2029 become U+FFFD, one for one", () => {
  for (let c = 0; c <= 0x20ff; c++) {
    const ch = String.fromCharCode(c);
    const control = (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) ||
      (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029;
    assert.equal(replaceControls(`a${ch}b`), control ? `a${REPLACEMENT}b` : `a${ch}b`, `U+${c}`);
  }
  assert.equal(replaceControls("\u001b[2J\u001b[31mRED"), "\ufffd[2J\ufffd[31mRED");
  assert.equal(replaceControls("a\r\nb\tc"), "a\r\nb\tc");
  assert.equal(replaceControls("a\r\nb\tc", "replace"), "a\ufffd\ufffdb\tc");
  // Not a control: text beyond the ranges, pairs and the replacement character itself.
  assert.equal(replaceControls("é 😀 \u00a0 \u202f \ufffd"), "é 😀 \u00a0 \u202f \ufffd");
  for (const text of CONTROL_TEXTS) {
    const replaced = replaceControls(text, "replace");
    assert.equal(replaced.length, text.length, JSON.stringify(text));
    assert.ok(!RAW_CONTROL.test(replaced), JSON.stringify(replaced));
  }
});

Deno.test("JSON text keeps its value with DEL, C1, U+2028 and U+2029 written as escapes", () => {
  for (const text of CONTROL_TEXTS) {
    const json = escapeJsonControls(JSON.stringify({ [text]: [text] }));
    assert.ok(!RAW_CONTROL.test(json), json);
    assert.deepEqual(JSON.parse(json), { [text]: [text] });
  }
  assert.equal(
    escapeJsonControls(JSON.stringify("a\u2028b\u0085c\u007f")),
    '"a\\u2028b\\u0085c\\u007f"',
  );
});
