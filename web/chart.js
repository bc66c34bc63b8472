/**
 * Run history as a uPlot chart: rows read (bars) and duration (line) of each finished run, oldest
 * to newest, one slot per run labelled with its start time, so a run a minute after the previous
 * one reads as well as one a day later. uPlot (~35 KB compressed) is imported on first use, so the
 * jobs list never loads it.
 */
import { useEffect, useRef } from './vendor/hooks.module.js';
import { html } from './components.js';
import { count, duration, utc } from './model.js';

let uPlotModule = null;
const loadUPlot = () => {
  uPlotModule ??= import('./vendor/uPlot.esm.js').then((m) => m.default);
  return uPlotModule;
};

/** The finished runs, oldest first: their start times (ms) and the series [slot, rows read, seconds]. */
export function chartData(runs) {
  const done = runs
    .filter((r) => r.status !== 'running')
    .slice()
    .reverse();
  return {
    starts: done.map((r) => Date.parse(r.started_at)),
    data: [
      done.map((_r, i) => i),
      done.map((r) => r.rows_read),
      done.map((r) => (r.duration_ms ?? 0) / 1000),
    ],
  };
}

/** A start time as a short axis label: the time of day (seconds too within an hour), the date when the runs span days. */
function label(ms, spanMs) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    ...(spanMs < 3_600_000 ? { second: '2-digit' } : {}),
  });
  return spanMs > 86_400_000
    ? `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`
    : time;
}

/** Half a slot either side of the runs, so the first and last bars are whole. */
function padX(u) {
  u.setScale('x', { min: -0.5, max: u.data[0].length - 0.5 });
}

/** uPlot's options; `meta.starts` is read at draw time, so setData with new runs relabels the axis. */
function options(UPlot, width, meta) {
  const css = getComputedStyle(document.documentElement);
  const ink = css.getPropertyValue('--muted').trim() || '#666';
  const grid = css.getPropertyValue('--line').trim() || '#ddd';
  const accent = css.getPropertyValue('--accent').trim() || '#2563eb';
  const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const start = (i) => meta.starts[Math.round(i)];
  return {
    width,
    height: 220,
    cursor: { drag: { x: false, y: false } },
    hooks: { ready: [padX] },
    scales: {
      x: { time: false },
      rows: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] },
      secs: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] },
    },
    series: [
      {
        label: 'run started',
        value: (_u, i) => (start(i) === undefined ? '–' : utc(new Date(start(i)).toISOString())),
      },
      {
        label: 'rows read',
        scale: 'rows',
        stroke: accent,
        fill: `color-mix(in srgb, ${accent} 35%, transparent)`,
        width: 1,
        paths: UPlot.paths.bars({ size: [0.6, 48] }),
        points: { show: false },
        value: (_u, v) => (v === null ? '–' : count(v)),
      },
      {
        label: 'duration',
        scale: 'secs',
        stroke: css.getPropertyValue('--warn').trim() || '#d97706',
        width: 2,
        dash: [6, 4],
        points: { show: true, size: 6 },
        value: (_u, v) => (v === null ? '–' : duration(v * 1000)),
      },
    ],
    axes: [
      {
        ...axis,
        // At most ~8 labelled slots, evenly spread.
        splits: (u) => {
          const n = u.data[0].length;
          const step = Math.max(1, Math.ceil(n / 8));
          return u.data[0].filter((i) => i % step === 0);
        },
        values: (_u, splits) => {
          const span = meta.starts.length ? meta.starts[meta.starts.length - 1] - meta.starts[0] : 0;
          return splits.map((i) => (start(i) === undefined ? '' : label(start(i), span)));
        },
      },
      {
        ...axis,
        scale: 'rows',
        label: 'rows read',
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? count(t) : '')),
      },
      { ...axis, scale: 'secs', side: 1, label: 'seconds', grid: { show: false } },
    ],
  };
}

export function RunChart({ runs }) {
  const box = useRef(null);
  const plot = useRef(null);
  const meta = useRef({ starts: [] });
  const { starts, data } = chartData(runs);
  const key = `${starts.join(',')}|${data[1].join(',')}`;

  useEffect(() => {
    let gone = false;
    loadUPlot().then((UPlot) => {
      if (gone || !box.current) return;
      meta.current.starts = starts;
      if (plot.current) {
        plot.current.setData(data);
        padX(plot.current);
      } else {
        plot.current = new UPlot(
          options(UPlot, box.current.clientWidth || 600, meta.current),
          data,
          box.current,
        );
      }
    });
    return () => {
      gone = true;
    };
  }, [key]);

  useEffect(() => {
    const resize = () => plot.current?.setSize({ width: box.current?.clientWidth || 600, height: 220 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  if (starts.length === 0)
    return html`<p class="muted">The chart shows rows and duration per run once a run has finished.</p>`;
  return html`<div class="chart" ref=${box} data-test="run-chart"></div>`;
}
