// The attention viewer: the three attention graphs of one sentence pair, drawn in SVG.
// Data: the JSON of AttentionView.data() (dgl_transformer/viewer/attention.py). No library.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("attention-data").textContent);
  var KINDS = ["enc", "dec_self", "cross"];
  // [sender side, receiver side] of each attention type
  var SIDES = { enc: ["source", "source"], dec_self: ["target", "target"],
                cross: ["source", "target"] };
  var NAMES = { enc: "encoder self-attention", dec_self: "decoder self-attention",
                cross: "encoder \u2192 decoder attention" };
  var SHAPES = { enc: D.encoder_graph, dec_self: "causal graph", cross: "bipartite graph" };
  // sizes of a panel: row height, label and weight columns, the gap the edges cross
  var BIG = { row: 17, label: 100, weight: 40, gap: 150, top: 18, minWidth: 0.4, maxWidth: 5,
              chars: 14 };
  var SMALL = { row: 10, label: 52, weight: 0, gap: 70, top: 2, minWidth: 0.3, maxWidth: 2.5,
                chars: 8 };

  function floats(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }
  var G = {};
  KINDS.forEach(function (kind) {
    var g = D.graphs[kind];
    G[kind] = { src: g.src, dst: g.dst, E: g.src.length, layers: g.layers, w: floats(g.weights) };
  });
  var steps = D.target.tokens.length;
  var maxLayers = Math.max.apply(null, KINDS.map(function (k) { return G[k].layers; }));
  var I = D.initial;
  var S = { layer: I.layer, head: I.head === null ? "all" : I.head, step: I.step || steps,
            threshold: I.threshold, words: I.words, hover: null };
  var rendered = [];

  function $(id) { return document.getElementById(id); }
  function escape(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function clip(text, chars) {
    return text.length > chars ? text.slice(0, chars - 1) + "\u2026" : text;
  }

  // How many nodes of `side` the panel of `kind` holds as pieces (the decoder: up to the step).
  function pieceCount(side, kind) {
    if (side === "target") return S.step;
    return kind === "cross" ? D.source_length : D.source.tokens.length;
  }
  // The labels of the nodes shown: pieces, or the words they make.
  function nodeLabels(side, kind) {
    var n = pieceCount(side, kind), s = D[side];
    return S.words ? s.words.slice(0, s.word_of[n - 1] + 1) : s.tokens.slice(0, n);
  }
  // Every edge of one layer and head among the nodes shown, with its weight.
  function pieceEdges(kind, layer, head) {
    var g = G[kind], sides = SIDES[kind], out = [], base = layer * g.E;
    var ns = pieceCount(sides[0], kind), nr = pieceCount(sides[1], kind);
    for (var e = 0; e < g.E; e++) {
      var s = g.src[e], d = g.dst[e];
      if (s < ns && d < nr) out.push({ s: s, d: d, w: g.w[(base + e) * D.heads + head] });
    }
    return out;
  }
  // The same edges between words: a word receives the sum of its sender pieces' weights,
  // averaged over its receiver pieces (the rule of lesson 5), so each receiving word's
  // weights still sum to 1.
  function wordEdges(kind, edges) {
    var sides = SIDES[kind], nr = pieceCount(sides[1], kind);
    var sw = D[sides[0]].word_of, dw = D[sides[1]].word_of, pieces = {}, sums = new Map();
    for (var i = 0; i < nr; i++) pieces[dw[i]] = (pieces[dw[i]] || 0) + 1;
    edges.forEach(function (e) {
      var key = dw[e.d] + ":" + sw[e.s];
      sums.set(key, (sums.get(key) || 0) + e.w);
    });
    var merged = [];
    sums.forEach(function (w, key) {
      var ds = key.split(":"), d = +ds[0];
      merged.push({ s: +ds[1], d: d, w: w / pieces[d] });
    });
    return merged;
  }

  // Whether a head mask had switched this head off when the model ran (its weights are still
  // computed and drawn; its output was multiplied by 0).
  function isOff(kind, layer, head) {
    return ((D.switched_off || {})[kind] || []).some(function (p) {
      return p[0] === layer && p[1] === head;
    });
  }
  var OFF = ' <span class="off-mark">off</span>';

  // `shown`: how many of the graph's edges join the nodes shown (fewer before the last step).
  function heading(kind, layer, head, small, shown) {
    var off = isOff(kind, layer, head);
    if (small) return "<h2>head " + head + (off ? OFF : "") + "</h2>";
    var all = G[kind].E, count = (shown < all ? shown + " of " : "") + all + " edges";
    return "<h2>" + NAMES[kind] + " <small>layer " + layer + ", head " + head + ": " +
      SHAPES[kind] + ", " + count + (S.words ? " between pieces" : "") + "</small>" +
      (off ? OFF + " <small>(switched off: its output is multiplied by 0)</small>" : "") +
      "</h2>";
  }

  function column(labels, side, x, anchor, z) {
    var out = [];
    labels.forEach(function (label, i) {
      var span = !S.words && side === "source" && i >= D.source_length;
      var cls = span ? ' class="span"' : "";
      out.push('<text' + cls + ' data-side="' + side + '" data-node="' + i + '" x="' + x +
        '" y="' + (z.top + (i + 0.5) * z.row) + '" text-anchor="' + anchor + '">' +
        "<title>" + escape(label) + "</title>" + escape(clip(label, z.chars)) + "</text>");
    });
    return out.join("");
  }
  function weightColumn(count, x, anchor, where, z) {
    var out = [];
    for (var i = 0; i < count; i++) {
      out.push('<text class="wt ' + where + '" data-node="' + i + '" x="' + x + '" y="' +
        (z.top + (i + 0.5) * z.row) + '" text-anchor="' + anchor + '"></text>');
    }
    return out.join("");
  }

  // One graph: senders in the left column, receivers in the right one, an edge per line.
  function panel(kind, layer, head, small) {
    var div = document.createElement("div");
    div.className = "panel " + kind;
    div.dataset.kind = kind;
    div.dataset.layer = layer;
    div.dataset.head = head;
    if (isOff(kind, layer, head)) div.className += " off";
    var g = G[kind];
    if (layer >= g.layers) {
      div.className += " missing";
      div.innerHTML = "<h2>" + NAMES[kind] + "</h2><p>no layer " + layer + " (" + g.layers +
        " layers)</p>";
      return div;
    }
    var sides = SIDES[kind], z = small ? SMALL : BIG;
    var left = nodeLabels(sides[0], kind), right = nodeLabels(sides[1], kind);
    var pieces = pieceEdges(kind, layer, head);
    var edges = S.words ? wordEdges(kind, pieces) : pieces;
    var xL = z.weight + z.label, xR = xL + z.gap, width = xR + z.label + z.weight;
    var height = 2 * z.top + Math.max(left.length, right.length) * z.row;
    var drawn = edges.filter(function (e) { return e.w >= S.threshold; })
      .sort(function (a, b) { return a.w - b.w; });  // strong edges on top
    var lines = drawn.map(function (e) {
      return '<line class="edge" data-s="' + e.s + '" data-d="' + e.d + '" data-w="' + e.w +
        '" x1="' + (xL + 4) + '" y1="' + (z.top + (e.s + 0.5) * z.row) + '" x2="' + (xR - 4) +
        '" y2="' + (z.top + (e.d + 0.5) * z.row) + '" stroke-width="' +
        (z.minWidth + z.maxWidth * e.w).toFixed(2) + '" stroke-opacity="' +
        (0.15 + 0.85 * e.w).toFixed(3) + '"></line>';
    });
    var captions = small ? "" : '<text class="caption" x="' + (xL - 2) + '" y="' + z.top / 2 +
      '" text-anchor="end">senders</text><text class="caption" x="' + (xR + 2) + '" y="' +
      z.top / 2 + '" text-anchor="start">receivers</text>';
    var svg = '<svg class="graph' + (small ? " small" : "") + '" width="' + width +
      '" height="' + height + '">' + captions + lines.join("") +
      column(left, sides[0], xL - 2, "end", z) + column(right, sides[1], xR + 2, "start", z) +
      (small ? "" : weightColumn(left.length, z.weight - 4, "end", "left", z) +
        weightColumn(right.length, xR + z.label + 4, "start", "right", z)) + "</svg>";
    div.innerHTML = heading(kind, layer, head, small, pieces.length) + svg;
    var el = div.querySelector("svg");
    rendered.push({
      svg: el, sides: sides, edges: edges, lines: el.querySelectorAll("line.edge"),
      texts: el.querySelectorAll("text[data-side]"),
      left: el.querySelectorAll("text.wt.left"), right: el.querySelectorAll("text.wt.right")
    });
    return div;
  }

  function setWeight(el, w) {
    if (!el) return;
    el.textContent = w.toFixed(3);
    el.setAttribute("data-w", String(w));
  }
  function applyHover() {
    var h = S.hover;
    rendered.forEach(function (p) {
      var recv = !!h && p.sides[1] === h.side, send = !!h && p.sides[0] === h.side;
      p.svg.classList.toggle("hovering", recv || send);
      p.lines.forEach(function (line) {
        line.classList.toggle("in", recv && +line.dataset.d === h.node);
        line.classList.toggle("out", send && +line.dataset.s === h.node);
      });
      p.texts.forEach(function (t) {
        t.classList.toggle("hovered", !!h && t.dataset.side === h.side && +t.dataset.node === h.node);
      });
      [p.left, p.right].forEach(function (list) {
        list.forEach(function (t) { t.textContent = ""; t.removeAttribute("data-w"); });
      });
      p.edges.forEach(function (e) {
        if (recv && e.d === h.node) setWeight(p.left[e.s], e.w);
        if (send && e.s === h.node) setWeight(p.right[e.d], e.w);
      });
    });
    status();
  }

  // A label as the status line shows it: with "words" ticked, without the word marks.
  function plain(label) {
    return S.words ? label.replace(/\u2581/g, "") || "\u2581" : label;
  }
  // The decoder's first t nodes: pieces, or (words) the pieces of each word joined.
  function held(t) {
    var s = D.target, labels = [];
    for (var k = 0; k < t; k++) {
      var i = S.words ? s.word_of[k] : k;
      labels[i] = (labels[i] || "") + s.tokens[k];
    }
    return labels.map(plain).join(" ");
  }
  function status() {
    var t = S.step, next = "\u201c" + plain(D.target.outputs[t - 1]) + "\u201d";
    var holds = "the decoder holds " + t + " node" + (t > 1 ? "s" : "") + " (" + held(t) + ")";
    var text = D.decoded
      ? "Decoding step " + t + " of " + steps + ": " + holds + " and writes " + next + "."
      : "Step " + t + " of " + steps + ", teacher-forced on the given target: " + holds +
        "; the next target token is " + next + ".";
    if (S.hover) {
      var s = D[S.hover.side], labels = S.words ? s.words : s.tokens;
      text += " Hovered: \u201c" + labels[S.hover.node] + "\u201d (" + S.hover.side + " " +
        (S.words ? "word " : "node ") + S.hover.node + ").";
    }
    $("status").textContent = text;
  }

  function render() {
    var root = $("panels");
    rendered = [];
    root.innerHTML = "";
    if (S.head === "all") {
      KINDS.forEach(function (kind) {
        var row = document.createElement("div");
        row.className = "kind-row";
        row.innerHTML = "<h2>" + NAMES[kind] + " <small>layer " + S.layer + ", every head: " +
          SHAPES[kind] + "</small></h2>";
        for (var h = 0; h < D.heads; h++) row.appendChild(panel(kind, S.layer, h, true));
        root.appendChild(row);
      });
    } else {
      KINDS.forEach(function (kind) { root.appendChild(panel(kind, S.layer, S.head, false)); });
    }
    applyHover();
    fit();
  }

  // Inside a notebook's iframe: grow the frame to the page (where the browser lets us).
  function fit() {
    try {
      if (window.frameElement) {
        window.frameElement.style.height = document.documentElement.scrollHeight + 4 + "px";
      }
    } catch (err) { /* another origin: the frame keeps its height */ }
  }

  function options(select, values, selected) {
    select.innerHTML = values.map(function (v) {
      return '<option value="' + v + '"' + (String(v) === String(selected) ? " selected" : "") +
        ">" + v + "</option>";
    }).join("");
  }

  function setUp() {
    $("title").textContent = D.title;
    var layers = [], heads = [];
    for (var l = 0; l < maxLayers; l++) layers.push(l);
    for (var h = 0; h < D.heads; h++) heads.push(h);
    options($("layer"), layers, S.layer);
    options($("head"), heads.concat(["all"]), S.head);
    var step = $("step"), threshold = $("threshold"), words = $("words");
    step.max = steps;
    step.value = S.step;
    threshold.value = S.threshold;
    words.checked = S.words;
    var merges = D.source.words.length < D.source.tokens.length ||
      D.target.words.length < D.target.tokens.length;
    $("words-control").hidden = !merges;
    function outputs() {
      $("step-value").textContent = S.step + " / " + steps;
      $("threshold-value").textContent = S.threshold.toFixed(2);
    }
    outputs();
    $("layer").addEventListener("change", function (e) { S.layer = +e.target.value; render(); });
    $("head").addEventListener("change", function (e) {
      S.head = e.target.value === "all" ? "all" : +e.target.value;
      render();
    });
    step.addEventListener("input", function () {
      S.step = +step.value;
      S.hover = null;
      outputs();
      render();
    });
    threshold.addEventListener("input", function () {
      S.threshold = +threshold.value;
      outputs();
      render();
    });
    words.addEventListener("change", function () {
      S.words = words.checked;
      S.hover = null;
      render();
    });
    var panels = $("panels");
    panels.addEventListener("mouseover", function (e) {
      var t = e.target.closest ? e.target.closest("text[data-side]") : null;
      if (!t) return;
      var next = { side: t.dataset.side, node: +t.dataset.node };
      if (!S.hover || S.hover.side !== next.side || S.hover.node !== next.node) {
        S.hover = next;
        applyHover();
      }
    });
    panels.addEventListener("mouseleave", function () { S.hover = null; applyHover(); });
  }

  setUp();
  render();
  window.attentionViewer = { ready: true, readyAt: performance.now(), state: S };
})();
