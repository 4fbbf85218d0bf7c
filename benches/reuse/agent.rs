//! The agent-loop and chat-loop measures: `agent_loop.py` drives the official OpenAI Python SDK
//! through 10 steps, full history each time, against a gateway with reuse and one replaying, each
//! on its own fake API; the API request bodies of both paths are compared step by step.

use super::*;

pub struct AgentResult {
    pub mode: Mode,
    /// Whether the first requests (a fresh process on both paths) were identical.
    pub control: Option<bool>,
    pub reuse: Vec<Duration>,
    pub replay: Vec<Duration>,
    pub identical: usize,
    pub compared: usize,
    pub differences: Vec<String>,
    /// What failed on each path that did not finish (`path: error`).
    pub errors: Vec<String>,
}

/// A hung CLI costs this long before the gateway answers 504 (the default is 120 s).
pub const AGENT_IDLE_TIMEOUT: &[&str] = &["--idle-timeout-secs", "20"];

/// What a loop of `agent_loop.py` sends back at each step.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// The results of the tool calls of the answer before.
    Tools,
    /// One more question after the answer before (a chat UI).
    Chat,
}

impl Mode {
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Tools => "tools",
            Mode::Chat => "chat",
        }
    }

    /// The marker of the loop's first user message.
    fn marker(self) -> &'static str {
        match self {
            Mode::Tools => "#agent-loop",
            Mode::Chat => "#chat-loop",
        }
    }
}

/// A loop of `agent_loop.py` through the Python SDK, each path on its own fake API (whose ids
/// then run alike), and the bodies of their API requests compared.
pub async fn agent_loop(bench: &Bench, mode: Mode) -> AgentResult {
    let (api_reuse, api_replay) = (FakeAnthropic::start().await, FakeAnthropic::start().await);
    let reuse = bench.gateway(&api_reuse, AGENT_IDLE_TIMEOUT).await;
    let replay = bench
        .gateway(&api_replay, &[REPLAY, AGENT_IDLE_TIMEOUT].concat())
        .await;
    let python = common::repo(".tools/venv/bin/python");
    let mut cmd = Command::new(&python);
    cmd.arg(common::repo("benches/reuse/agent_loop.py"))
        .args([&reuse.base, &replay.base, &ROUNDS.to_string(), mode.arg()])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the agent loop within 180 s")
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "agent_loop.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("agent_loop.py JSON");
    let steps = |k: &str| -> Vec<Duration> {
        let list = result[k].as_array().expect("steps").iter();
        list.map(|s| Duration::from_secs_f64(s.as_f64().expect("seconds")))
            .collect()
    };
    let of_loop = |api: &FakeAnthropic| -> Vec<Value> {
        let all = api.requests().into_iter();
        all.filter(|r| r["messages"].to_string().contains(mode.marker()))
            .map(without_user_id)
            .collect()
    };
    let (a, b) = (of_loop(&api_reuse), of_loop(&api_replay));
    let mut differences = Vec::new();
    if a.len() != b.len() {
        differences.push(format!(
            "{} API requests with reuse, {} replaying",
            a.len(),
            b.len()
        ));
    }
    // Request 0 asks the first question (a fresh process on both paths: the control); request
    // i is step i, the one carrying the i-th tool result.
    let (mut identical, mut compared, mut control) = (0, 0, None);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        // As text: key order counts (the API sees bytes).
        let same = serde_json::to_string(x).ok() == serde_json::to_string(y).ok();
        match i {
            0 => control = Some(same),
            _ => {
                compared += 1;
                identical += usize::from(same);
            }
        }
        if same {
            continue;
        }
        let at = first_difference(x, y, String::new()).unwrap_or("key order".into());
        differences.push(match i {
            0 => format!("the first request (control, no reuse involved): {at}"),
            i => format!("step {i}: {at}"),
        });
    }
    AgentResult {
        mode,
        control,
        reuse: steps("reuse"),
        replay: steps("replay"),
        identical,
        compared,
        differences,
        errors: result["errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, e)| format!("{path}: {}", e.as_str().unwrap_or_default()))
            .collect(),
    }
}

/// A request body without `metadata.user_id` (it names the CLI's session).
fn without_user_id(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("user_id");
    }
    v
}

/// The JSON path of the first difference, with both values (shortened).
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{at}.{k}")),
                _ => Some(format!("{at}.{k} only on one side")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => {
            let short = |v: &Value| v.to_string().chars().take(160).collect::<String>();
            Some(format!("{at}: `{}` vs `{}`", short(a), short(b)))
        }
    }
}
