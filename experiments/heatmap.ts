// The paper's Figure 3: one sample's mean unmasked attention matrix as an SVG heat map, with
// the three DP regions marked (before the diagonal = DP-B, the diagonal = DP-M, after = DP-A).

/** Options of `heatmapSvg`. */
export interface HeatmapOptions {
  title: string;
  /** Token labels for the axes (shown when there are few enough). */
  tokens?: readonly string[];
  /** DP values to print in the legend (percent). */
  dp?: { dpM: number; dpB: number; dpA: number };
}

/** A sequential colour map (white → dark blue) on a square-root scale, so small masses show. */
function colour(v: number, max: number): string {
  const t = Math.sqrt(Math.max(0, Math.min(1, v / max)));
  const lerp = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${lerp(255, 8)},${lerp(255, 48)},${lerp(255, 107)})`;
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** SVG of an L×L matrix (row-major): rows are queries, columns keys. */
export function heatmapSvg(a: ArrayLike<number>, l: number, options: HeatmapOptions): string {
  const cell = Math.max(1, Math.min(24, Math.floor(640 / l)));
  const size = cell * l;
  const showLabels = options.tokens !== undefined && cell >= 10;
  // left: row labels; top: title, subtitle and the rotated column labels
  const left = showLabels ? 70 : 20, top = showLabels ? 120 : 56, legend = 250;
  const width = left + size + legend, height = top + size + 24;
  let max = 0;
  for (let i = 0; i < l * l; i++) max = Math.max(max, a[i]!);
  const rects: string[] = [];
  for (let i = 0; i < l; i++) {
    for (let j = 0; j < l; j++) {
      const v = a[i * l + j]!;
      if (v <= 0) continue;
      rects.push(
        `<rect x="${left + j * cell}" y="${
          top + i * cell
        }" width="${cell}" height="${cell}" fill="${colour(v, max)}"/>`,
      );
    }
  }
  const labels: string[] = [];
  if (showLabels) {
    options.tokens!.forEach((t, i) => {
      const short = esc(t.length > 8 ? `${t.slice(0, 7)}…` : t);
      labels.push(
        `<text x="${left - 4}" y="${top + i * cell + cell * 0.7}" text-anchor="end" font-size="${
          Math.min(10, cell - 2)
        }">${short}</text>`,
      );
      labels.push(
        `<text transform="translate(${left + i * cell + cell * 0.7},${
          top - 4
        }) rotate(-60)" font-size="${Math.min(10, cell - 2)}">${short}</text>`,
      );
    });
  }
  const x0 = left, y0 = top;
  const dp = options.dp;
  const legendX = left + size + 16;
  const legendText = [
    `<text x="${legendX}" y="${y0 + 12}" font-size="12" font-weight="bold">regions</text>`,
    `<text x="${legendX}" y="${y0 + 30}" font-size="11">lower triangle: DP-B${
      dp ? ` ${dp.dpB.toFixed(2)}%` : ""
    }</text>`,
    `<text x="${legendX}" y="${y0 + 46}" font-size="11">diagonal: DP-M${
      dp ? ` ${dp.dpM.toFixed(2)}%` : ""
    }</text>`,
    `<text x="${legendX}" y="${y0 + 62}" font-size="11">upper triangle: DP-A${
      dp ? ` ${dp.dpA.toFixed(2)}%` : ""
    }</text>`,
    `<text x="${legendX}" y="${y0 + 86}" font-size="10">colour: √(weight / ${
      max.toPrecision(3)
    })</text>`,
    `<text x="${legendX}" y="${y0 + 100}" font-size="10">rows: queries, columns: keys</text>`,
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">${esc(options.title)}</text>
<text x="10" y="36" font-size="11">mean over layers and heads of softmax(q·kᵀ/√d) with no mask, L = ${l}</text>
${rects.join("\n")}
<rect x="${x0}" y="${y0}" width="${size}" height="${size}" fill="none" stroke="black" stroke-width="1"/>
<line x1="${x0}" y1="${y0}" x2="${x0 + size}" y2="${
    y0 + size
  }" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3"/>
<text x="${x0 + size * 0.22}" y="${
    y0 + size * 0.8
  }" font-size="13" fill="#d62728" opacity="0.8">DP-B</text>
<text x="${x0 + size * 0.65}" y="${
    y0 + size * 0.3
  }" font-size="13" fill="#d62728" opacity="0.8">DP-A</text>
${labels.join("\n")}
${legendText.join("\n")}
</svg>
`;
}
