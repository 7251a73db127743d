// One sample's UBMoE routing as an SVG: a row per layer, a cell per token, coloured by the
// expert chosen first for it (causal expert 0 grey, bidirectional expert 1 orange), the
// tokens written underneath.

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** SVG of per-layer routing decisions ([N·k] expert ids per layer) over `tokens`. */
export function routingSvg(
  tokens: readonly string[],
  decisions: readonly Int32Array[],
  k: number,
  title: string,
): string {
  const cell = Math.max(6, Math.min(28, Math.floor(900 / Math.max(1, tokens.length))));
  const left = 70, top = 50, rowH = 18;
  const labelH = cell >= 12 ? 90 : 10;
  const width = left + cell * tokens.length + 20;
  const height = top + rowH * decisions.length + labelH + 30;
  const parts: string[] = [];
  decisions.forEach((d, layer) => {
    const y = top + layer * rowH;
    parts.push(
      `<text x="${left - 8}" y="${y + 13}" text-anchor="end" font-size="11">layer ${layer}</text>`,
    );
    tokens.forEach((_, t) => {
      const expert = d[t * k]!;
      const fill = expert === 1 ? "#e6862e" : "#c8c8c8";
      parts.push(
        `<rect x="${left + t * cell}" y="${y}" width="${cell - 1}" height="${
          rowH - 2
        }" fill="${fill}"/>`,
      );
    });
  });
  if (cell >= 12) {
    const y = top + rowH * decisions.length + 6;
    tokens.forEach((tok, t) => {
      const x = left + t * cell + cell / 2;
      parts.push(
        `<text transform="translate(${x},${y}) rotate(60)" font-size="10">${
          esc(JSON.stringify(tok).slice(1, -1))
        }</text>`,
      );
    });
  }
  const legendY = height - 12;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<text x="${left}" y="20" font-size="13">${esc(title)}: expert chosen per token and layer</text>
${parts.join("\n")}
<rect x="${left}" y="${legendY - 10}" width="12" height="12" fill="#c8c8c8"/><text x="${
    left + 16
  }" y="${legendY}" font-size="11">expert 0 (causal MLP)</text>
<rect x="${left + 170}" y="${legendY - 10}" width="12" height="12" fill="#e6862e"/><text x="${
    left + 186
  }" y="${legendY}" font-size="11">expert 1 (bidirectional MLP)</text>
</svg>
`;
}
