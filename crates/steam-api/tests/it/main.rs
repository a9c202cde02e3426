//! steam-api's integration tests: one binary, one module per area. The fake
//! Steam Web API they talk to is `test_support::steam`.

mod cache;
mod parse;
mod profiles;
mod resolve;
