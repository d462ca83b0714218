//! Merging partials into a result, and the parity/line bookkeeping that makes it exact.
//!
//! Each file's spans, sorted by start, must tile the file's data bytes. Walking them in order,
//! each span computed from the true quoting state at its start gives the true state at its end
//! (the next span's start); a running newline count gives the file line of every span start.
//! A span computed under the wrong state is re-run ([`check_parities`]); the spans after it
//! are judged once it has been; [`finish`] refuses to merge until none is left.

use std::collections::{BTreeSet, HashMap};

use super::badrows::BadRows;
use super::error::AggError;
use super::output;
use super::partial::{AggState, Partial, SpanStats};
use super::plan::{Parity, Partition, Plan};
use super::result::{BadValueReport, GroupRow, QueryResult};

/// A partial computed (partly) under the wrong quote parity: drop it, and compute these
/// partitions (its spans, each with the parity its start really has) instead. For a partial
/// of one plan partition computed in pieces, the first span's parity is the partition's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rerun {
    pub partial: usize,
    pub partitions: Vec<Partition>,
}

/// Spans of every partial, per file, sorted by start: (partial index, span).
fn spans_by_file(
    plan: &Plan,
    partials: &[Partial],
) -> Result<Vec<Vec<(usize, SpanStats)>>, AggError> {
    let mut by_file = vec![Vec::new(); plan.files.len()];
    for (i, p) in partials.iter().enumerate() {
        for s in &p.spans {
            match by_file.get_mut(s.file) {
                Some(v) if s.start <= s.end => v.push((i, *s)),
                _ => {
                    return Err(AggError::UnknownPartition {
                        file: s.file,
                        start: s.start,
                        end: s.end,
                    });
                }
            }
        }
    }
    for v in &mut by_file {
        v.sort_by_key(|(_, s)| s.start);
    }
    Ok(by_file)
}

/// Which partials were computed under a wrong assumed parity, with the partitions to compute
/// instead. Spans after a gap (a partition not reported yet) cannot be judged yet and are not
/// listed; call again when more partials have arrived. The coordinator uses this as partials
/// come in; [`super::execute`] uses it once after the first pass.
pub fn check_parities(plan: &Plan, partials: &[Partial]) -> Result<Vec<Rerun>, AggError> {
    let by_file = spans_by_file(plan, partials)?;
    let mut truth: HashMap<(usize, u64), Parity> = HashMap::new();
    let mut wrong = BTreeSet::new();
    for (f, spans) in by_file.iter().enumerate() {
        let mut pos = plan.files[f].data_start;
        let mut parity = Parity::Even;
        for (i, s) in spans {
            if s.start != pos {
                break;
            }
            truth.insert((f, s.start), parity);
            if s.parity != parity {
                // Its end state is not known until it is re-run: the spans after it wait.
                wrong.insert(*i);
                break;
            }
            parity = s.end_parity;
            pos = s.end;
        }
    }
    Ok(wrong
        .into_iter()
        .map(|i| Rerun {
            partial: i,
            partitions: partials[i]
                .spans
                .iter()
                .map(|s| Partition {
                    parity: truth.get(&(s.file, s.start)).copied().unwrap_or(s.parity),
                    ..s.partition()
                })
                .collect(),
        })
        .collect())
}

/// Merges partials one at a time with a persistent key index (cheap for many groups).
#[derive(Default)]
pub struct Merger {
    acc: Partial,
    index: HashMap<Vec<Vec<u8>>, usize>,
}

impl Merger {
    pub fn add(&mut self, p: Partial) {
        for g in p.groups {
            match self.index.get(&g.key) {
                Some(&i) => self.acc.groups[i].merge(&g),
                None => {
                    self.index.insert(g.key.clone(), self.acc.groups.len());
                    self.acc.groups.push(g);
                }
            }
        }
        let rest = Partial {
            groups: Vec::new(),
            ..p
        };
        self.acc.merge(rest);
    }

    pub fn into_partial(self) -> Partial {
        self.acc
    }
}

/// Checks coverage and parities, merges, resolves bad-row lines, applies `strict`, and orders
/// the groups like pandas' `value_counts()`: count descending, then key bytes ascending.
pub fn finish(plan: &Plan, partials: Vec<Partial>) -> Result<QueryResult, AggError> {
    let by_file = spans_by_file(plan, &partials)?;
    let mut line_at: HashMap<(usize, u64), u64> = HashMap::new();
    let mut wrong = 0;
    for (f, spans) in by_file.iter().enumerate() {
        let file = &plan.files[f];
        let mut pos = file.data_start;
        let mut parity = Parity::Even;
        let mut line = file.data_start_line;
        for (_, s) in spans {
            if s.start != pos {
                return Err(AggError::Coverage {
                    path: file.path.clone(),
                    start: pos.min(s.start),
                    end: pos.max(s.start),
                });
            }
            if s.parity != parity {
                wrong += 1;
            }
            line_at.insert((f, s.start), line);
            line += s.newlines;
            parity = s.end_parity;
            pos = s.end;
        }
        if pos != file.size {
            return Err(AggError::Coverage {
                path: file.path.clone(),
                start: pos,
                end: file.size,
            });
        }
    }
    if wrong > 0 {
        return Err(AggError::ParityNotResolved { count: wrong });
    }
    let mut merger = Merger::default();
    for p in partials {
        merger.add(p);
    }
    let mut merged = merger.into_partial();
    for e in &mut merged.bad.examples {
        e.line = line_at.get(&(e.file, e.span_start)).copied().unwrap_or(0) + e.rel_line;
        e.path = plan.files.get(e.file).map(|f| f.path.clone());
    }
    for b in &mut merged.bad_values {
        let e = &mut b.example;
        e.line = line_at.get(&(e.file, e.span_start)).copied().unwrap_or(0) + e.rel_line;
        e.path = plan.files.get(e.file).map(|f| f.path.clone());
    }
    if merged.rows == 0 && merged.bad.total() == 0 {
        return Err(AggError::EmptyInput {
            files: plan.files.len(),
        });
    }
    if plan.query.strict
        && let Some(e) = merged.bad.examples.first()
    {
        return Err(AggError::BadRow {
            path: e.path.clone().unwrap_or_default(),
            line: e.line,
            reason: e.reason,
            excerpt: e.excerpt.clone(),
        });
    }
    Ok(result_of(plan, merged))
}

/// What the consumers of `mask` are called (bit 0: WHERE, then the keys, then aggregates).
fn consumers(plan: &Plan, mask: u64) -> Vec<String> {
    let mut out = Vec::new();
    let nk = plan.group_names.len();
    for bit in 0..64 {
        if mask & (1u64 << bit) == 0 {
            continue;
        }
        out.push(match bit {
            0 => "WHERE".to_string(),
            b if b <= nk => format!("GROUP BY {}", plan.group_names[b - 1]),
            b => plan
                .aggregates
                .get(b - 1 - nk)
                .map_or_else(|| "more".to_string(), |a| a.label.clone()),
        });
    }
    out
}

fn result_of(plan: &Plan, merged: Partial) -> QueryResult {
    let mut groups = merged.groups;
    let plain = plan.keys.iter().all(|k| k.as_column().is_some());
    let table = plan.query.select.as_ref().map(|sel| {
        let mut all = groups.clone();
        if all.is_empty() && plan.keys.is_empty() {
            all.push(output::empty_group(plan));
        }
        output::sql_table(plan, sel, &all)
    });
    groups.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.key.cmp(&b.key)));
    let exact = groups.iter().all(|g| {
        g.aggs.iter().all(|a| match a {
            AggState::Sum { sum, .. } => sum.is_exact(),
            _ => true,
        })
    });
    let rows = groups
        .into_iter()
        .map(|g| GroupRow {
            key: g
                .key
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    if plain {
                        String::from_utf8_lossy(k).into_owned()
                    } else {
                        output::key_val(plan, false, i, k).to_text()
                    }
                })
                .collect(),
            count: g.rows,
            values: g
                .aggs
                .iter()
                .zip(&plan.aggregates)
                .map(|(a, r)| output::agg_value(a, g.rows, r.q, false))
                .collect(),
        })
        .collect();
    let BadRows { counts, examples } = merged.bad;
    QueryResult {
        group_by: plan.group_names.clone(),
        aggregates: plan.aggregates.iter().map(|a| a.label.clone()).collect(),
        groups: rows,
        rows: merged.rows,
        blank_lines: merged.blank_lines,
        bad_rows: super::result::BadRowsReport {
            total: counts.values().sum(),
            by_reason: counts
                .into_iter()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
            examples,
        },
        missing: plan
            .aggregates
            .iter()
            .map(|a| a.label.clone())
            .zip(merged.missing)
            .filter(|(_, n)| *n > 0)
            .collect(),
        files: plan.files.len(),
        bytes: plan.total_bytes(),
        exact,
        filtered: merged.filtered,
        bad_values: merged
            .bad_values
            .into_iter()
            .map(|b| BadValueReport {
                column: plan
                    .header
                    .as_ref()
                    .and_then(|h| h.get(b.column).cloned())
                    .unwrap_or_else(|| b.column.to_string()),
                reason: b.reason.name().to_string(),
                rows: b.rows,
                left_out_of: consumers(plan, b.consumers),
                example: b.example,
            })
            .collect(),
        table,
    }
}
