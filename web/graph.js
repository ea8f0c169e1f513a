/*
 * The `needs` graph of a chain as SVG (docs/console.md): fragments in layers, left to
 * right, each after everything it needs, with an arrow from each need to its user.
 *
 *   VulcanGraph.layers(nodes, edges) -> {name: layer}
 *   VulcanGraph.svg(nodes, edges, opts) -> an <svg> element
 *
 * nodes: [{name, status}], edges: [[from, to]] (from is needed by to). A name in an
 * edge but not in nodes gets a node of status "unknown". A cycle (the server refuses
 * one; this only guards against it) stops at VulcanGraph.MAX_LAYERS. Text goes in with
 * textContent only: nothing is parsed as markup.
 */
"use strict";
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var MAX_LAYERS = 64;
  var BOX_W = 170, BOX_H = 34, GAP_X = 56, GAP_Y = 14, PAD = 8, MAX_LABEL = 22;

  /* The layer of each node: 0 when it needs nothing, else one more than its deepest need. */
  function layers(nodes, edges) {
    var layer = {};
    nodes.forEach(function (n) { layer[n.name] = 0; });
    edges.forEach(function (e) {
      if (!(e[0] in layer)) layer[e[0]] = 0;
      if (!(e[1] in layer)) layer[e[1]] = 0;
    });
    for (var pass = 0; pass < MAX_LAYERS; pass++) {
      var moved = false;
      edges.forEach(function (e) {
        if (layer[e[1]] < layer[e[0]] + 1 && layer[e[0]] + 1 < MAX_LAYERS) {
          layer[e[1]] = layer[e[0]] + 1;
          moved = true;
        }
      });
      if (!moved) break;
    }
    return layer;
  }

  function el(tag, attrs) {
    var x = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { x.setAttribute(k, String(attrs[k])); });
    return x;
  }

  function svg(nodes, edges, opts) {
    opts = opts || {};
    var status = {};
    nodes.forEach(function (n) { status[n.name] = n.status; });
    var layer = layers(nodes, edges);
    var cols = [];
    Object.keys(layer).forEach(function (name) {
      var l = layer[name];
      (cols[l] = cols[l] || []).push(name);
    });
    /* Order within a layer: as the nodes came (the chain's order), unknown names last. */
    var order = {};
    nodes.forEach(function (n, i) { order[n.name] = i; });
    var pos = {}, rows = 0;
    cols.forEach(function (c, l) {
      c.sort(function (a, b) {
        return (a in order ? order[a] : 1e9) - (b in order ? order[b] : 1e9) || (a < b ? -1 : 1);
      });
      c.forEach(function (name, i) {
        pos[name] = { x: PAD + l * (BOX_W + GAP_X), y: PAD + i * (BOX_H + GAP_Y) };
      });
      rows = Math.max(rows, c.length);
    });
    var w = PAD * 2 + cols.length * BOX_W + Math.max(0, cols.length - 1) * GAP_X;
    var hgt = PAD * 2 + rows * BOX_H + Math.max(0, rows - 1) * GAP_Y;
    var root = el("svg", { width: w, height: hgt, viewBox: "0 0 " + w + " " + hgt, role: "img",
      class: "needs-svg" });
    var label = el("title");
    label.textContent = opts.title || "needs graph";
    root.appendChild(label);
    var defs = el("defs");
    var marker = el("marker", { id: "needs-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "needs-arrow" }));
    defs.appendChild(marker);
    root.appendChild(defs);
    edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]];
      if (!a || !b) return;
      var x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2, mx = (x1 + x2) / 2;
      var p = el("path", { d: "M " + x1 + " " + y1 + " C " + mx + " " + y1 + ", " + mx + " " + y2 + ", " + x2 + " " + y2,
        class: "needs-edge", "marker-end": "url(#needs-arrow)", "data-edge": e[0] + " -> " + e[1] });
      root.appendChild(p);
    });
    Object.keys(pos).forEach(function (name) {
      var st = status[name] || "unknown";
      var g = el("g", { class: "needs-node st-" + st, "data-node": name, "data-status": st,
        "data-layer": layer[name], transform: "translate(" + pos[name].x + "," + pos[name].y + ")" });
      var tip = el("title");
      tip.textContent = name + ": " + st;
      g.appendChild(tip);
      g.appendChild(el("rect", { width: BOX_W, height: BOX_H, rx: 6, ry: 6 }));
      var t = el("text", { x: 10, y: BOX_H / 2 + 5 });
      t.textContent = name.length > MAX_LABEL ? name.slice(0, MAX_LABEL - 1) + "…" : name;
      g.appendChild(t);
      root.appendChild(g);
    });
    return root;
  }

  window.VulcanGraph = { layers: layers, svg: svg, MAX_LAYERS: MAX_LAYERS };
})();
