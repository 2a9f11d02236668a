// edgeaff dashboard: predictions from the WebSocket (/ws), the server's status (/status) and the latest frame
// (/preview.jpg), drawn with uPlot. The token, when the page was opened with ?token=..., goes along with every
// request. No other origin is contacted.
(function () {
  "use strict";

  const WINDOW_S = 20;        // seconds of history in the traces
  const TRAIL_S = 3;          // seconds of history on the valence-arousal plane
  const MAX_POINTS = 4000;    // bound on the points kept, whatever the frame rate
  const REDRAW_MS = 100;
  const STATUS_MS = 1000;
  const PREVIEW_MS = 200;

  const token = new URLSearchParams(window.location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  const $ = (id) => document.getElementById(id);

  // what arrived: server wall time of each prediction and its values
  const stamps = [];
  const valence = [];
  const arousal = [];
  let latest = null;
  let dirty = false;
  let received = 0;

  $("window-s").textContent = String(WINDOW_S);

  function width(id, fallback) {
    const box = $(id).getBoundingClientRect();
    return Math.max(200, Math.floor(box.width) || fallback);
  }

  const traces = new uPlot({
    width: width("traces", 800),
    height: 240,
    legend: { live: false },
    cursor: { show: false },
    scales: { x: { time: false, range: [-WINDOW_S, 0] }, y: { auto: false, range: [-1, 1] } },
    axes: [
      { label: "seconds before now" },
      { label: "value", splits: () => [-1, -0.5, 0, 0.5, 1] },
    ],
    series: [
      { label: "t" },
      { label: "valence", stroke: "#c0392b", width: 2, spanGaps: false },
      { label: "arousal", stroke: "#2e6fd1", width: 2, spanGaps: false },
    ],
  }, [[], [], []], $("traces"));

  // uPlot's scatter mode (mode 2) leaves the drawing of points to the series' paths: discs of `size` px
  function dots(size) {
    return (u, seriesIdx) => {
      const [xs, ys] = u.data[seriesIdx];
      const disc = new Path2D();
      const radius = (size * uPlot.pxRatio) / 2;
      for (let i = 0; i < xs.length; i++) {
        const x = u.valToPos(xs[i], "x", true);
        const y = u.valToPos(ys[i], "y", true);
        disc.moveTo(x + radius, y);
        disc.arc(x, y, radius, 0, 2 * Math.PI);
      }
      return { stroke: disc, fill: disc };
    };
  }

  const unitSplits = () => [-1, -0.5, 0, 0.5, 1];
  const planeSize = () => Math.min(width("plane", 320), 360);
  const plane = new uPlot({
    mode: 2,
    width: planeSize(),
    height: planeSize(),
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: false, auto: false, range: [-1, 1] }, y: { auto: false, range: [-1, 1] } },
    axes: [
      { label: "valence", splits: unitSplits },
      { label: "arousal", splits: unitSplits },
    ],
    series: [
      {},
      {
        label: "recent",
        stroke: "rgba(46, 111, 209, 0.5)",
        fill: "rgba(46, 111, 209, 0.25)",
        width: 1,
        paths: dots(6),
        points: { show: false },
        facets: [{ scale: "x", auto: false }, { scale: "y", auto: false }],
      },
      {
        label: "now",
        stroke: "#7b1f15",
        fill: "#c0392b",
        width: 1,
        paths: dots(16),
        points: { show: false },
        facets: [{ scale: "x", auto: false }, { scale: "y", auto: false }],
      },
    ],
  }, [null, [[], []], [[], []]], $("plane"));

  function trim() {
    if (!stamps.length) return;
    const newest = stamps[stamps.length - 1];
    let drop = 0;
    while (drop < stamps.length && (newest - stamps[drop] > WINDOW_S || stamps.length - drop > MAX_POINTS)) drop++;
    if (drop) {
      stamps.splice(0, drop);
      valence.splice(0, drop);
      arousal.splice(0, drop);
    }
  }

  function redraw() {
    if (!dirty) return;
    dirty = false;
    trim();
    const newest = stamps.length ? stamps[stamps.length - 1] : 0;
    const x = stamps.map((t) => t - newest);
    traces.setData([x, valence.slice(), arousal.slice()]);
    const trailX = [];
    const trailY = [];
    for (let i = 0; i < stamps.length; i++) {
      if (newest - stamps[i] <= TRAIL_S && valence[i] !== null && arousal[i] !== null) {
        trailX.push(valence[i]);
        trailY.push(arousal[i]);
      }
    }
    const now = latest && latest.valence !== null && latest.arousal !== null
      ? [[latest.valence], [latest.arousal]]
      : [[], []];
    plane.setData([null, [trailX, trailY], now]);
    if (latest) {
      $("valence").textContent = latest.valence === null ? "–" : latest.valence.toFixed(3);
      $("arousal").textContent = latest.arousal === null ? "–" : latest.arousal.toFixed(3);
      $("face").textContent = latest.face ? "yes" : "no";
    }
  }

  function onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    received += 1;
    latest = message;
    stamps.push(typeof message.emitted_at === "number" ? message.emitted_at : Date.now() / 1000);
    valence.push(message.valence);
    arousal.push(message.arousal);
    if (stamps.length > MAX_POINTS * 2) trim();
    dirty = true;
  }

  let retry = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + window.location.host + "/ws" + query);
    socket.onopen = () => { retry = 500; };
    socket.onmessage = onMessage;
    socket.onclose = () => {
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 8000);
    };
  }

  function setState(state) {
    const badge = $("state");
    badge.dataset.state = state;
    badge.textContent = state;
  }

  function fixed(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "–";
  }

  async function pollStatus() {
    try {
      const response = await fetch("status" + query, { cache: "no-store" });
      if (!response.ok) throw new Error("status " + response.status);
      const status = await response.json();
      const source = status.source || {};
      setState(source.state || "unknown");
      $("source").textContent = (source.kind || "?") + " " + (source.name || "") + (source.loop ? " (loop)" : "");
      $("source").title = source.detail || "";
      $("frames").textContent = String(status.frames);
      $("faces").textContent = String(status.frames_with_face);
      $("fps").textContent = fixed(status.fps, 1);
      const latency = status.latency_ms;
      $("latency").textContent = latency ? fixed(latency.p50, 0) + " / " + fixed(latency.p99, 0) + " ms" : "–";
      $("dropped").textContent = status.dropped_frames + " / " + status.dropped_messages;
      $("clients").textContent = String(status.clients ? status.clients.connected : 0);
      $("backend").textContent = status.backend + " " + status.precision;
    } catch (error) {
      setState("offline");
    }
    window.setTimeout(pollStatus, STATUS_MS);
  }

  let shown = null;
  async function pollPreview() {
    let wait = PREVIEW_MS;
    try {
      const response = await fetch("preview.jpg" + query, { cache: "no-store" });
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        const image = $("preview");
        image.onload = () => { if (shown) URL.revokeObjectURL(shown); shown = url; };
        image.src = url;
        $("preview-note").textContent = "";
      } else if (response.status === 404) {
        $("preview-note").textContent = "No preview on this server (--no-preview).";
        wait = 10000;
      } else {
        $("preview-note").textContent = "Waiting for the first frame…";
        wait = 1000;
      }
    } catch (error) {
      wait = 2000;
    }
    window.setTimeout(pollPreview, wait);
  }

  window.addEventListener("resize", () => {
    traces.setSize({ width: width("traces", 800), height: 240 });
    const side = planeSize();
    plane.setSize({ width: side, height: side });
  });

  // for tests and curious users: how many predictions this page has received
  window.edgeaffDashboard = { received: () => received, points: () => stamps.length };

  window.setInterval(redraw, REDRAW_MS);
  connect();
  pollStatus();
  pollPreview();
})();
