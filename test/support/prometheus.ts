/** One scrape in the Prometheus text format: sample values by series (`name{a="1",b="2"}`, labels sorted), and types by metric name. */
export interface Scrape {
  samples: Map<string, number>;
  types: Map<string, string>;
  /** The value of a series, 0 when absent (a counter never incremented has no sample). */
  value(name: string, labels?: Record<string, string>): number;
  /** Every sample name the scrape can hold: counters and gauges by name, histograms with _bucket/_sum/_count, summaries with _sum/_count. */
  sampleNames(): Set<string>;
}

const seriesKey = (name: string, labels: Record<string, string>) => {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
};

/** Parses the text exposition format (what prom-client writes); enough for tests: no escapes beyond \" in label values. */
export function parsePrometheus(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.set(seriesKey(m[1], labels), Number(m[3]));
  }
  return {
    samples,
    types,
    value: (name, labels = {}) => samples.get(seriesKey(name, labels)) ?? 0,
    sampleNames() {
      const names = new Set<string>();
      for (const [name, type] of types) {
        if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
        else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
        else names.add(name);
      }
      for (const key of samples.keys()) names.add(key.replace(/\{.*$/, ''));
      return names;
    },
  };
}

export async function scrape(url: string): Promise<Scrape> {
  // One retry of a connection that failed outright (seen once in a full parallel run: undici's "fetch failed"), with
  // its cause in the error if it fails again; a wrong status or content is never retried.
  const response = await fetch(url).catch(async (first: Error) => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return fetch(url).catch((err: Error) => {
      throw new Error(`${url}: ${err.message} (${String((err.cause as Error | undefined)?.message ?? err.cause)}); first attempt: ${String((first.cause as Error | undefined)?.message ?? first.cause)}`);
    });
  });
  if (response.status !== 200) throw new Error(`${url} → ${response.status}`);
  return parsePrometheus(await response.text());
}
