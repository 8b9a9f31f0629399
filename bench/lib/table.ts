// A plain-text table (also valid Markdown), columns padded to their widest cell.
export type Row = string[];

export function renderTable(header: string[], rows: Row[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? "")].length)));
  const line = (r: Row) => `| ${r.map((c, i) => (c ?? "") + " ".repeat(widths[i] - [...(c ?? "")].length)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}
