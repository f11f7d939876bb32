//! What a compiled CEL expression reads: its free variables (a comprehension's own variables are
//! bound, not inputs) and the first-level fields it selects from `jwt` and `args`, with whether
//! each is tested by `has()`. Owns the walk over the parsed expression; not what is done with the
//! answer (load errors in `condition.rs`, warnings in `cli/lint.rs`).

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

/// The reads of one expression.
#[derive(Debug, Default, Clone)]
pub(super) struct Reads {
    /// Free variables, deduplicated, in the order first met.
    pub variables: Vec<String>,
    /// Free variables read other than as `x.field` or `has(x.field)` (whole, indexed, passed
    /// on): a value that holds only the selected fields would not do for them.
    pub whole: Vec<String>,
    /// `(variable, field, tested)`: `args.x` read, or tested with `has(args.x)`.
    pub fields: Vec<(String, String, bool)>,
    /// `(field, JSON type)`: an `args` field compared with a literal of that type, or used as a
    /// string (`args.x.startsWith(…)`), so that a schema can say whether the use can ever hold.
    pub arg_uses: Vec<(String, &'static str)>,
}

/// Comparison operators, whose operands must be of one type.
const COMPARISONS: [&str; 6] = ["_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_"];
/// Methods that only a string has.
const STRING_METHODS: [&str; 4] = ["startsWith", "endsWith", "contains", "matches"];

/// `args.x` as the field name `x`.
fn arg_field(expr: &IdedExpr, bound: &[String]) -> Option<String> {
    match &expr.expr {
        Expr::Select(select) if !select.test => match &select.operand.expr {
            Expr::Ident(name) if name == "args" && !bound.iter().any(|b| b == "args") => {
                Some(select.field.clone())
            }
            _ => None,
        },
        _ => None,
    }
}

/// The JSON type of a literal (`number` for every numeric one).
fn literal_type(expr: &IdedExpr) -> Option<&'static str> {
    match &expr.expr {
        Expr::Literal(literal) => Some(match literal {
            LiteralValue::Boolean(_) => "boolean",
            LiteralValue::Double(_) | LiteralValue::Int(_) | LiteralValue::UInt(_) => "number",
            LiteralValue::String(_) => "string",
            LiteralValue::Null => "null",
            LiteralValue::Bytes(_) => "bytes",
        }),
        _ => None,
    }
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
            if !bound.contains(name) && !reads.whole.contains(name) {
                reads.whole.push(name.clone());
            }
            free(name, bound, reads);
        }
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) => {
                if !bound.contains(name) {
                    reads
                        .fields
                        .push((name.clone(), select.field.clone(), select.test));
                }
                free(name, bound, reads);
            }
            _ => walk(&select.operand, bound, reads),
        },
        Expr::Call(call) => {
            if COMPARISONS.contains(&call.func_name.as_str())
                && let [left, right] = call.args.as_slice()
            {
                for (field, literal) in [(left, right), (right, left)] {
                    if let (Some(field), Some(kind)) =
                        (arg_field(field, bound), literal_type(literal))
                    {
                        reads.arg_uses.push((field, kind));
                    }
                }
            }
            if STRING_METHODS.contains(&call.func_name.as_str())
                && let Some(field) = call.target.as_deref().and_then(|t| arg_field(t, bound))
            {
                reads.arg_uses.push((field, "string"));
            }
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

/// Records `name` as a free variable unless a comprehension binds it.
fn free(name: &str, bound: &[String], reads: &mut Reads) {
    if !bound.iter().any(|b| b == name) && !reads.has_variable(name) {
        reads.variables.push(name.to_owned());
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
