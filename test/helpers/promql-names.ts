// The metric names a PromQL expression reads, for checking dashboards against what mailgate
// exports: a tokenizer, not a parser. Strings, label matchers, ranges, grouping clauses and
// Grafana variables are removed first; what is left is functions (a name before "("),
// keywords, numbers and metric names. A name before "(" that is not a PromQL function is an
// error, so a misspelled function is not mistaken for a metric either.

/** PromQL's functions and aggregation operators (Prometheus 2.x/3.x). */
const FUNCTIONS = new Set(
  (
    'abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min ' +
    'cos cosh count_over_time days_in_month day_of_month day_of_week day_of_year deg delta deriv exp floor ' +
    'histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum ' +
    'holt_winters double_exponential_smoothing hour idelta increase irate label_join label_replace last_over_time ln log10 log2 ' +
    'mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate ' +
    'resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time ' +
    'sum_over_time tan tanh time timestamp vector year ' +
    // aggregation operators
    'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio'
  ).split(' '),
);
/** Words that are not names: set operators, modifiers, literals. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'start', 'end']);

/** The metric names `expr` reads. Throws on a call of something that is not a PromQL function. */
export function promqlMetricNames(expr: string): string[] {
  let s = expr
    // String literals (label values, label_replace arguments, Grafana's "$instance").
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    // Label matchers and ranges/subqueries (with $__rate_interval and the like inside).
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // Grouping and vector-matching clauses name labels, not metrics.
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\b(?:group_left|group_right)\b/g, ' ')
    // Grafana variables left outside strings ($__interval, ${var}).
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    // offset 5m, @ 1609746000
    .replace(/\boffset\s+-?\w+/g, ' ')
    .replace(/@\s*\S+/g, ' ')
    // Numbers: 0.95, 1e3, 0x1f, durations such as 5m outside brackets.
    .replace(/(?<![\w:])(?:0x[0-9a-f]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?[a-z]*|\.\d+)/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const called = /^\s*\(/.test(s.slice(m.index + word.length));
    if (called) {
      if (!FUNCTIONS.has(word)) throw new Error(`"${word}(" in ${expr}: not a PromQL function`);
      continue;
    }
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  s = '';
  return [...names];
}

/** Every metric name a Prometheus text exposition declares (# TYPE lines, so a labelled
 *  counter nobody incremented yet is there too), a histogram's and summary's series included. */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}
