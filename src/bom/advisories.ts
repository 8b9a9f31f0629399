// A tiny, real advisory list so that vulnerability analysis does checkable work without a network.
// Matching is by package-URL name and an affected version range [from, before).
export interface Advisory {
  id: string;
  severity: "CRITICAL" | "HIGH" | "MEDIUM" | "LOW";
  purlPrefix: string; // "pkg:type/namespace/name@"
  from: string;
  before: string;
}

export const advisories: Advisory[] = [
  { id: "CVE-2021-44228", severity: "CRITICAL", purlPrefix: "pkg:maven/org.apache.logging.log4j/log4j-core@", from: "2.0", before: "2.15.0" },
  { id: "CVE-2021-23337", severity: "HIGH", purlPrefix: "pkg:npm/lodash@", from: "0", before: "4.17.21" },
  { id: "CVE-2021-44906", severity: "CRITICAL", purlPrefix: "pkg:npm/minimist@", from: "0", before: "1.2.6" },
  { id: "CVE-2020-14343", severity: "CRITICAL", purlPrefix: "pkg:pypi/pyyaml@", from: "0", before: "5.4" },
  { id: "CVE-2022-42889", severity: "CRITICAL", purlPrefix: "pkg:maven/org.apache.commons/commons-text@", from: "1.5", before: "1.10.0" },
];

/** Compares dotted versions numerically, part by part (2.14.1 < 2.15.0; 1.2 < 1.10). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+]/).map((p) => Number.parseInt(p, 10));
  const pb = b.split(/[.\-+]/).map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = Number.isNaN(pa[i] ?? 0) ? 0 : (pa[i] ?? 0);
    const y = Number.isNaN(pb[i] ?? 0) ? 0 : (pb[i] ?? 0);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export interface Finding {
  purl: string;
  advisory: string;
  severity: Advisory["severity"];
}

export function findVulnerabilities(purls: string[]): Finding[] {
  const findings: Finding[] = [];
  for (const purl of purls) {
    const bare = purl.split(/[?#]/)[0].toLowerCase();
    for (const a of advisories) {
      if (!bare.startsWith(a.purlPrefix)) continue;
      const version = bare.slice(a.purlPrefix.length);
      if (compareVersions(version, a.from) >= 0 && compareVersions(version, a.before) < 0) {
        findings.push({ purl, advisory: a.id, severity: a.severity });
      }
    }
  }
  return findings;
}
