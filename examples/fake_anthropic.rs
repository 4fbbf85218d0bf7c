//! Runs the test suite's fake Anthropic Messages API on its own, for trying the gateway on the
//! real CLI without spending tokens:
//! `cargo run --example fake_anthropic` prints `ANTHROPIC_BASE_URL=http://127.0.0.1:PORT`; start
//! the gateway with that and `ANTHROPIC_API_KEY=anything`. Directives in the prompt steer the
//! answers (see `tests/common/fake_anthropic.rs`).

#[path = "../tests/common/fake_anthropic.rs"]
mod fake_anthropic;

#[tokio::main]
async fn main() {
    let api = fake_anthropic::FakeAnthropic::start().await;
    println!("ANTHROPIC_BASE_URL={}", api.base_url());
    let _ = tokio::signal::ctrl_c().await;
}
