//! CEL conditions (policy version 2): compiling a `when` expression once, at load, and evaluating
//! it against one call. Owns the variables a condition may read and how each is turned into a CEL
//! value; not which rules carry conditions (`compile.rs`) nor what a result decides (`decide.rs`).
//!
//! Values are built only for the variables an expression reads, and the costly ones once: the
//! token's claims once per token ([`ClaimsCache`]), the call's arguments once per call and only
//! when a condition reads `args` ([`Facts`]).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use serde_json::value::RawValue;

use super::ScopeSet;
use super::cel_json::ArgFields;

/// The variables a condition may read; any other name is a load error.
pub const VARIABLES: [&str; 5] = ["jwt", "args", "tool", "method", "scopes"];

/// The standard CEL environment, built once: building it per evaluation would cost more than
/// most expressions do.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

thread_local! {
    /// The same environment, one per thread, for evaluation: each evaluation's context holds a
    /// clone of the `Arc`, and one count shared by every core would move between their caches
    /// at every call.
    static THREAD_ENV: Arc<Env> = Arc::new(Env::stdlib());
}

/// One compiled `when` expression.
pub(super) struct Condition {
    /// As written, for explanations and the audit line.
    pub source: Box<str>,
    program: Program,
    reads: Uses,
    /// `(variable, field, tested by has())` for each first-level field of `jwt` and `args` read.
    fields: Vec<(String, String, bool)>,
    /// `(field, JSON type)` for each `args` field used as that type.
    arg_uses: Vec<(String, &'static str)>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// Which variables an expression reads.
#[derive(Debug, Clone, Copy, Default)]
struct Uses {
    jwt: bool,
    args: bool,
    /// `args` read other than through its fields.
    args_whole: bool,
    scopes: bool,
}

/// What a condition sees of one call besides its rule.
pub struct Facts<'a> {
    /// Every verified claim of the token.
    pub claims: &'a serde_json::Map<String, serde_json::Value>,
    /// The claims as a CEL value, built on first use and kept with the verified token.
    pub claims_cache: &'a ClaimsCache,
    /// What `args` is.
    pub arguments: Arguments<'a>,
}

/// The call's `params.arguments`.
#[derive(Clone, Copy)]
pub enum Arguments<'a> {
    /// The raw JSON as the inspector kept it (`None` when the call has none: `args` is `{}`).
    Raw(Option<&'a RawValue>),
    /// Not known: a listing is decided before any call. A condition that reads `args` is then
    /// not evaluated (see [`Outcome::Unknown`]).
    Unknown,
}

impl Facts<'_> {
    /// Facts of a call without a token's claims and without arguments: `jwt` and `args` are `{}`.
    pub fn none() -> Facts<'static> {
        static EMPTY: LazyLock<serde_json::Map<String, serde_json::Value>> =
            LazyLock::new(serde_json::Map::new);
        static CACHE: LazyLock<ClaimsCache> = LazyLock::new(ClaimsCache::default);
        Facts {
            claims: &EMPTY,
            claims_cache: &CACHE,
            arguments: Arguments::Raw(None),
        }
    }
}

/// The token's claims as a CEL map, built once per verified token.
#[derive(Debug, Default)]
pub struct ClaimsCache(OnceLock<Box<dyn Val>>);

/// A clone starts empty: the cache is derived from the claims, and is rebuilt on first use.
impl Clone for ClaimsCache {
    fn clone(&self) -> Self {
        ClaimsCache::default()
    }
}

/// Derived from the claims, so it never tells two principals apart.
impl PartialEq for ClaimsCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What one condition came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    True,
    False,
    /// It reads `args`, which are not known yet (listings).
    Unknown,
    /// It failed at run time (missing field, wrong type) or did not give a bool: fail closed.
    Error(String),
}

/// Values shared by the conditions of one decision, each built on first need.
pub(super) struct Scope<'f, 'a> {
    facts: &'f Facts<'a>,
    tool: &'f str,
    method: &'f str,
    scopes: &'f ScopeSet,
    /// The fields of `args` the policy's conditions read.
    args_read: &'f ArgFields,
    /// Borrows its strings from the request's raw arguments.
    args: OnceCell<Result<Box<dyn Val + 'a>, String>>,
    scope_list: OnceCell<Box<dyn Val + 'f>>,
}

impl<'f, 'a> Scope<'f, 'a> {
    pub(super) fn new(
        facts: &'f Facts<'a>,
        method: &'f str,
        tool: &'f str,
        scopes: &'f ScopeSet,
        args_read: &'f ArgFields,
    ) -> Self {
        Scope {
            facts,
            tool,
            method,
            scopes,
            args_read,
            args: OnceCell::new(),
            scope_list: OnceCell::new(),
        }
    }

    /// The scopes held, after the hierarchy.
    pub(super) fn scopes(&self) -> &'f ScopeSet {
        self.scopes
    }

    /// `args` as CEL sees it, converted once per decision and only when a condition reads it:
    /// straight from the raw JSON, its strings borrowed rather than copied, and only the fields
    /// the policy's conditions read.
    fn args(&self) -> Result<&(dyn Val + 'a), String> {
        self.args
            .get_or_init(|| match self.facts.arguments {
                Arguments::Raw(None) | Arguments::Unknown => {
                    Ok(Box::new(CelMap::from(HashMap::new())))
                }
                Arguments::Raw(Some(raw)) => super::cel_json::from_raw(raw, self.args_read)
                    .map_err(|error| format!("arguments unreadable: {error}")),
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// `jwt` as CEL sees it, converted once per token.
    fn jwt(&self) -> &dyn Val {
        &**self.facts.claims_cache.0.get_or_init(|| {
            let claims: HashMap<CelMapKey<'static>, Box<dyn Val>> = self
                .facts
                .claims
                .iter()
                .map(|(name, value)| (CelMapKey::from(name.clone()), to_val(value)))
                .collect();
            Box::new(CelMap::from(claims))
        })
    }

    fn scope_list(&self) -> &(dyn Val + 'f) {
        &**self.scope_list.get_or_init(|| {
            let held: Vec<Box<dyn Val + 'f>> = self
                .scopes
                .iter()
                .map(|scope| Box::new(CelString::from(scope)) as Box<dyn Val + 'f>)
                .collect();
            Box::new(CelList::from(held))
        })
    }
}

/// The variables of one evaluation, borrowed: nothing is copied into the CEL context.
struct Variables<'s> {
    jwt: Option<&'s dyn Val>,
    args: Option<&'s dyn Val>,
    tool: CelString<'s>,
    method: CelString<'s>,
    scopes: Option<&'s dyn Val>,
}

impl VariableResolver for Variables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "jwt" => self.jwt.map(CowVal::Borrowed),
            "args" => self.args.map(CowVal::Borrowed),
            "tool" => Some(CowVal::Borrowed(&self.tool)),
            "method" => Some(CowVal::Borrowed(&self.method)),
            "scopes" => self.scopes.map(CowVal::Borrowed),
            _ => None,
        }
    }
}

impl Condition {
    /// Compiles `source`; the error says what is wrong in words a policy author can act on.
    pub(super) fn compile(source: &str) -> Result<Condition, String> {
        let program = ENV
            .compile(source)
            .map_err(|errors| format!("invalid condition: {}", one_line(&errors.to_string())))?;
        let found = super::reads::Reads::of(program.expression());
        let mut unknown: Vec<&str> = found
            .variables
            .iter()
            .map(String::as_str)
            .filter(|name| !VARIABLES.contains(name))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "unknown variable {} in condition; a condition reads {}",
                unknown.join(", "),
                VARIABLES.join(", ")
            ));
        }
        let reads = Uses {
            jwt: found.has_variable("jwt"),
            args: found.has_variable("args"),
            args_whole: found.whole.iter().any(|v| v == "args"),
            scopes: found.has_variable("scopes"),
        };
        Ok(Condition {
            source: source.into(),
            program,
            reads,
            fields: found.fields,
            arg_uses: found.arg_uses,
        })
    }

    /// Fields of `variable` (`jwt` or `args`) read without a `has()` test in the expression.
    pub(super) fn untested_fields(&self, variable: &str) -> Vec<&str> {
        super::reads::untested(&self.fields, variable)
    }

    /// The `args` fields read, deduplicated.
    pub(super) fn argument_fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = self
            .fields
            .iter()
            .filter(|(variable, _, _)| variable == "args")
            .map(|(_, field, _)| field.as_str())
            .collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// Adds what this condition reads of `args` to what the arguments must hold.
    pub(super) fn read_args_into(&self, read: &mut ArgFields) {
        if self.reads.args {
            read.add(self.reads.args_whole, &self.argument_fields());
        }
    }

    /// `(field, JSON type)` for each `args` field used as that type.
    pub(super) fn argument_uses(&self) -> &[(String, &'static str)] {
        &self.arg_uses
    }

    /// Evaluates the condition for one call.
    pub(super) fn evaluate(&self, scope: &Scope<'_, '_>) -> Outcome {
        if self.reads.args && matches!(scope.facts.arguments, Arguments::Unknown) {
            return Outcome::Unknown;
        }
        let args = if self.reads.args {
            match scope.args() {
                Ok(args) => Some(args),
                Err(error) => return Outcome::Error(error),
            }
        } else {
            None
        };
        let variables = Variables {
            jwt: self.reads.jwt.then(|| scope.jwt()),
            args,
            tool: CelString::from(scope.tool),
            method: CelString::from(scope.method),
            scopes: self.reads.scopes.then(|| scope.scope_list()),
        };
        let mut context = Context::with_env(THREAD_ENV.with(Arc::clone));
        context.set_variable_resolver(&variables);
        match self.program.execute(&context) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!(
                "the condition gave {}, not a bool",
                other.type_of()
            )),
            Err(error) => Outcome::Error(error.to_string()),
        }
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// JSON to CEL: numbers that fit an `i64` are ints (so `args.amount > 100` works), others
/// doubles; a `u64` beyond `i64` stays unsigned. Built straight into CEL's own values.
fn to_val(json: &serde_json::Value) -> Box<dyn Val> {
    match json {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>()))
        }
        serde_json::Value::Object(members) => Box::new(CelMap::from(
            members
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}
