// The request-latency histogram, kept in plain arrays and rendered only when scraped. prom-client's
// Histogram hashes the label set on every observe(), labelled child or not; on the hot paths
// (tens of thousands of requests a second) that hashing was about 2 µs per request, close to a
// tenth of a key verification. Here a request costs two Map lookups and a bucket search.

/** One line of the rendering, as prom-client's registry reads it from get(). */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

interface Series {
  labels: { method: string; route: string; status: string };
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class RequestDurations {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** route -> "METHOD status" -> series: the route pattern is the part that varies most. */
  private readonly byRoute = new Map<string, Map<string, Series>>();

  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds in seconds, ascending. */
    private readonly bounds: readonly number[],
  ) {}

  observe(method: string, route: string, status: number, seconds: number): void {
    let ofRoute = this.byRoute.get(route);
    if (!ofRoute) this.byRoute.set(route, (ofRoute = new Map<string, Series>()));
    const key = `${method} ${status}`;
    let series = ofRoute.get(key);
    if (!series) {
      series = { labels: { method, route, status: String(status) }, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      ofRoute.set(key, series);
    }
    let bucket = 0;
    // "le": an observation equal to a bound belongs to that bound's bucket.
    while (bucket < this.bounds.length && seconds > this.bounds[bucket]!) bucket += 1;
    series.counts[bucket]! += 1;
    series.sum += seconds;
    series.count += 1;
  }

  /** What prom-client's registry renders: cumulative buckets, then _sum and _count, per series. */
  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const values: Sample[] = [];
    for (const ofRoute of this.byRoute.values()) {
      for (const series of ofRoute.values()) {
        let cumulative = 0;
        series.counts.forEach((count, bucket) => {
          cumulative += count;
          const le = bucket < this.bounds.length ? this.bounds[bucket]! : '+Inf';
          values.push({ metricName: `${this.name}_bucket`, labels: { le, ...series.labels }, value: cumulative });
        });
        values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
        values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count });
      }
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.byRoute.clear();
  }
}
