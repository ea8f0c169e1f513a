/*
 * ANSI SGR to DOM: turns one line of terminal output into spans with classes
 * (16 colours, bold, italic, underline) or CSSOM colours (256 and 24-bit).
 * Other escape sequences are dropped. No innerHTML: text is only ever text.
 * The state (current attributes) carries from one line to the next.
 */
"use strict";
(function (global) {
  function AnsiState() { this.reset(); }
  AnsiState.prototype.reset = function () {
    this.fg = null; this.bg = null; this.bold = false; this.italic = false;
    this.underline = false; this.fgRgb = null; this.bgRgb = null;
  };

  var PALETTE = [[0, 0, 0], [205, 49, 49], [13, 188, 121], [229, 229, 16], [36, 114, 200],
    [188, 63, 188], [17, 168, 205], [229, 229, 229], [102, 102, 102], [241, 76, 76],
    [35, 209, 139], [245, 245, 67], [59, 142, 234], [214, 112, 214], [41, 184, 219],
    [255, 255, 255]];

  function color256(n) {
    if (n < 16) return PALETTE[n];
    if (n < 232) {
      n -= 16;
      var v = [0, 95, 135, 175, 215, 255];
      return [v[Math.floor(n / 36)], v[Math.floor(n / 6) % 6], v[n % 6]];
    }
    var g = 8 + (n - 232) * 10;
    return [g, g, g];
  }

  AnsiState.prototype.apply = function (params) {
    var p = params.length ? params : [0];
    for (var i = 0; i < p.length; i++) {
      var c = p[i];
      if (c === 0) this.reset();
      else if (c === 1) this.bold = true;
      else if (c === 3) this.italic = true;
      else if (c === 4) this.underline = true;
      else if (c === 22) this.bold = false;
      else if (c === 23) this.italic = false;
      else if (c === 24) this.underline = false;
      else if (c >= 30 && c <= 37) { this.fg = c - 30; this.fgRgb = null; }
      else if (c >= 90 && c <= 97) { this.fg = c - 90 + 8; this.fgRgb = null; }
      else if (c === 39) { this.fg = null; this.fgRgb = null; }
      else if (c >= 40 && c <= 47) { this.bg = c - 40; this.bgRgb = null; }
      else if (c >= 100 && c <= 107) { this.bg = c - 100 + 8; this.bgRgb = null; }
      else if (c === 49) { this.bg = null; this.bgRgb = null; }
      else if ((c === 38 || c === 48) && p[i + 1] === 5 && i + 2 < p.length) {
        var rgb = color256(p[i + 2] & 255);
        if (c === 38) { this.fgRgb = rgb; } else { this.bgRgb = rgb; }
        i += 2;
      } else if ((c === 38 || c === 48) && p[i + 1] === 2 && i + 4 < p.length) {
        var t = [p[i + 2] & 255, p[i + 3] & 255, p[i + 4] & 255];
        if (c === 38) { this.fgRgb = t; } else { this.bgRgb = t; }
        i += 4;
      }
    }
  };

  AnsiState.prototype.span = function (text) {
    var plain = this.fg === null && this.bg === null && !this.bold && !this.italic &&
      !this.underline && !this.fgRgb && !this.bgRgb;
    if (plain) return document.createTextNode(text);
    var s = document.createElement("span");
    var cls = [];
    if (this.fg !== null && !this.fgRgb) cls.push("a-fg" + this.fg);
    if (this.bg !== null && !this.bgRgb) cls.push("a-bg" + this.bg);
    if (this.bold) cls.push("a-b");
    if (this.italic) cls.push("a-i");
    if (this.underline) cls.push("a-u");
    if (cls.length) s.className = cls.join(" ");
    if (this.fgRgb) s.style.color = "rgb(" + this.fgRgb.join(",") + ")";
    if (this.bgRgb) s.style.backgroundColor = "rgb(" + this.bgRgb.join(",") + ")";
    s.textContent = text;
    return s;
  };

  /* CSI ... final byte, OSC ... BEL/ST, and two-byte escapes. */
  var ESC_RE = /\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

  /* Render one line (without its newline) into `parent`. */
  AnsiState.prototype.renderLine = function (line, parent) {
    /* A carriage return overwrites the line: keep what was written last. */
    var cr = line.lastIndexOf("\r");
    if (cr >= 0) line = cr === line.length - 1 ? line.slice(0, cr) : line.slice(cr + 1);
    var last = 0, m;
    ESC_RE.lastIndex = 0;
    while ((m = ESC_RE.exec(line)) !== null) {
      if (m.index > last) parent.appendChild(this.span(line.slice(last, m.index)));
      if (m[2] === "m") {
        var params = m[1] === "" ? [] : m[1].split(";").map(function (x) { return parseInt(x, 10) || 0; });
        this.apply(params);
      }
      last = ESC_RE.lastIndex;
    }
    if (last < line.length) parent.appendChild(this.span(line.slice(last)));
  };

  /* Text without escape sequences (for copying, searching, tests). */
  function strip(text) { return text.replace(ESC_RE, ""); }

  global.VulcanAnsi = { State: AnsiState, strip: strip };
})(window);
