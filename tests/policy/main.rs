//! The API server's side of kflex's rules, evaluated with a CEL interpreter: the CRDs'
//! validation rules and the controller's admission policy. One test binary, as each links all
//! of kflex.

mod admission_policy;
mod crd_rules;
