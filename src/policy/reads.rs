//! What a compiled CEL expression reads: its free variables (a comprehension's own variables are
//! bound, not inputs) and the first-level fields it selects from `jwt` and `args`, with whether
//! each is tested by `has()`. Owns the walk over the parsed expression; not what is done with the
//! answer (load errors in `condition.rs`, warnings in `cli/lint.rs`).

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// The reads of one expression.
#[derive(Debug, Default, Clone)]
pub(super) struct Reads {
    /// Free variables, deduplicated, in the order first met.
    pub variables: Vec<String>,
    /// `(variable, field, tested)`: `args.x` read, or tested with `has(args.x)`.
    pub fields: Vec<(String, String, bool)>,
}

impl Reads {
    pub(super) fn of(expr: &IdedExpr) -> Reads {
        let mut reads = Reads::default();
        walk(expr, &mut Vec::new(), &mut reads);
        reads
    }

    pub(super) fn has_variable(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }
}

/// Fields of `variable` read somewhere without a `has()` test of the same field anywhere in the
/// expression: reading one that is absent fails the expression.
pub(super) fn untested<'a>(fields: &'a [(String, String, bool)], variable: &str) -> Vec<&'a str> {
    let tested = |field: &str| {
        fields
            .iter()
            .any(|(v, f, test)| v == variable && f == field && *test)
    };
    let mut found: Vec<&str> = fields
        .iter()
        .filter(|(v, field, test)| v == variable && !test && !tested(field))
        .map(|(_, field, _)| field.as_str())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

fn walk(expr: &IdedExpr, bound: &mut Vec<String>, reads: &mut Reads) {
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if !bound.contains(name) && !reads.has_variable(name) {
                reads.variables.push(name.clone());
            }
        }
        Expr::Select(select) => {
            if let Expr::Ident(name) = &select.operand.expr
                && !bound.contains(name)
            {
                reads
                    .fields
                    .push((name.clone(), select.field.clone(), select.test));
            }
            walk(&select.operand, bound, reads);
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, bound, reads);
            }
            for arg in &call.args {
                walk(arg, bound, reads);
            }
        }
        Expr::List(list) => {
            for element in &list.elements {
                walk(element, bound, reads);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                walk_entry(&entry.expr, bound, reads);
            }
        }
        Expr::Struct(fields) => {
            for entry in &fields.entries {
                walk_entry(&entry.expr, bound, reads);
            }
        }
        Expr::Comprehension(comprehension) => {
            walk(&comprehension.iter_range, bound, reads);
            walk(&comprehension.accu_init, bound, reads);
            let depth = bound.len();
            bound.push(comprehension.iter_var.clone());
            bound.extend(comprehension.iter_var2.clone());
            bound.push(comprehension.accu_var.clone());
            walk(&comprehension.loop_cond, bound, reads);
            walk(&comprehension.loop_step, bound, reads);
            walk(&comprehension.result, bound, reads);
            bound.truncate(depth);
        }
    }
}

fn walk_entry(entry: &EntryExpr, bound: &mut Vec<String>, reads: &mut Reads) {
    match entry {
        EntryExpr::MapEntry(entry) => {
            walk(&entry.key, bound, reads);
            walk(&entry.value, bound, reads);
        }
        EntryExpr::StructField(field) => walk(&field.value, bound, reads),
    }
}
