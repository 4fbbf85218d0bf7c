//! The one configuration of the binary: every knob is a flag with an environment variable and a
//! default, shown in `--help`. It is validated once at start (`Config::engine_config`) and passed
//! by reference afterwards. A `.env` file in the working directory is read before parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::access::{AccessConfig, ApiKey};
use crate::chat::models::ModelMap;
use crate::chat::validate::ValidationConfig;
use crate::claude::EngineConfig;
use crate::claude::engine::PoolSettings;
use crate::claude::limit::LimitConfig;
use crate::claude::parked::ParkConfig;
use crate::fetch::{FetchBudget, FetchConfig};
use crate::grpc::tls::{ClientTlsFiles, ServerTlsFiles};
use crate::grpc::upstream::{Deadlines, UpstreamConfig};
use crate::traces::{OtlpProtocol, TraceConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// `--bare` when ANTHROPIC_API_KEY is set, otherwise the CLI's own login.
    Auto,
    /// Always `--bare` with ANTHROPIC_API_KEY (strongest isolation; no subscription login).
    ApiKey,
    /// Never `--bare`: use the login stored by `claude` (subscription or console).
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Check the claude CLI (path, version, login), the configuration and the work dir, without
    /// spending tokens, and print what to fix; exits 1 when completions could not be served.
    Doctor,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "claude-gateway",
    version,
    args_override_self = true,
    about = "OpenAI-compatible HTTP and gRPC API for Claude, driving the claude CLI"
)]
pub struct Config {
    /// Without a subcommand, the gateway serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// HTTP listen address [default: 127.0.0.1:8000, or 127.0.0.1:$PORT].
    #[arg(long, env = "HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Port of the default HTTP address (kept for the seed's PORT convention).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// gRPC listen address.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// PEM certificate (chain) of the gRPC server; with --grpc-tls-key, gRPC is served over TLS
    /// only (clients use https://).
    #[arg(long, env = "GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM CA certificate: gRPC clients must present a certificate signed by it (mutual TLS),
    /// or the handshake fails. Needs --grpc-tls-cert.
    #[arg(long, env = "GRPC_TLS_CLIENT_CA", requires = "grpc_tls_cert")]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// The claude CLI: a path, or a name looked up on PATH.
    #[arg(long, env = "CLAUDE_BIN", default_value = "claude")]
    pub claude_bin: PathBuf,

    /// Run as a façade in front of other instances' gRPC ports, comma-separated
    /// (http://HOST:PORT, or https://HOST:PORT when the worker serves TLS); no CLI runs here.
    /// Requests are balanced by the load each worker reports; a DNS name is resolved again
    /// every --upstream-resolve-secs and each of its addresses is a worker (a headless Service).
    #[arg(long, env = "UPSTREAM", value_delimiter = ',')]
    pub upstream: Vec<String>,

    /// How often the --upstream DNS names are resolved again, in seconds.
    #[arg(long, env = "UPSTREAM_RESOLVE_SECS", default_value_t = 5)]
    pub upstream_resolve_secs: u64,

    /// The key sent to the `--upstream` worker (`authorization: Bearer KEY`), when the worker
    /// has `--api-keys`. Refused at startup over plain http:// to a host that is not loopback,
    /// unless --upstream-insecure.
    #[arg(long, env = "UPSTREAM_API_KEY", hide_env_values = true)]
    pub upstream_api_key: Option<ApiKey>,

    /// PEM CA certificate that signed the https:// `--upstream` worker's certificate
    /// [default: the public web PKI roots].
    #[arg(long, env = "UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// PEM client certificate presented to the https:// `--upstream` worker (for a worker with
    /// --grpc-tls-client-ca).
    #[arg(long, env = "UPSTREAM_TLS_CERT", requires = "upstream_tls_key")]
    pub upstream_tls_cert: Option<PathBuf>,

    /// PEM private key of --upstream-tls-cert.
    #[arg(long, env = "UPSTREAM_TLS_KEY", requires = "upstream_tls_cert")]
    pub upstream_tls_key: Option<PathBuf>,

    /// Allow sending --upstream-api-key over plain http:// to a worker that is not on this
    /// machine (a network you trust); without it that is refused at startup.
    #[arg(long, env = "UPSTREAM_INSECURE", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub upstream_insecure: bool,

    /// Time limit to connect to the `--upstream` worker (TCP and TLS handshake), in seconds.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_SECS", default_value_t = 5)]
    pub upstream_connect_timeout_secs: u64,

    /// Deadline of each short call to the `--upstream` worker (models, sessions, health), in
    /// seconds; completions get --request-timeout-secs. Sent as `grpc-timeout`; past it, 504.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECS", default_value_t = 10)]
    pub upstream_timeout_secs: u64,

    /// Gateway API keys (comma-separated): clients must send one as `Authorization: Bearer KEY`
    /// (gRPC: `authorization` metadata). With none here or in --api-keys-file, the gateway is
    /// open.
    #[arg(
        long,
        env = "GATEWAY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,

    /// Admin API keys (comma-separated): keys like --api-keys whose callers see every tenant's
    /// sessions. A `--upstream` façade's --upstream-api-key should be one of the worker's.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_api_keys: Vec<ApiKey>,

    /// A file of gateway API keys, one per line (`#` starts a comment), added to --api-keys. A
    /// line may name the key's tenant and role after the key: `KEY name=alice role=admin`.
    #[arg(long, env = "GATEWAY_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// A file with the key (64 hex digits: `openssl rand -hex 32`) that seals Claude's thinking
    /// into the `encrypted_content` of Responses reasoning items. Without it a random key is
    /// drawn at start, and such items are valid only on this instance until it restarts; give
    /// every instance behind one address the same file.
    #[arg(long, env = "REASONING_KEY_FILE")]
    pub reasoning_key_file: Option<PathBuf>,

    /// Whether /health…, /metrics and grpc.health.v1 answer without a key when there are keys.
    /// The docs (/, /openapi.json, /docs, /redoc) and gRPC reflection are always open.
    #[arg(long, env = "PUBLIC_HEALTH", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub public_health: bool,

    /// Requests per minute allowed per API key (per client address when there are no keys),
    /// over HTTP and gRPC together; beyond it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "RATE_LIMIT_RPM", default_value_t = 0)]
    pub rate_limit_rpm: u32,

    /// A `postgres://` URL where the --rate-limit-rpm budgets are kept, shared by every gateway
    /// using that database (façades and workers); without it each process counts its own. If
    /// the database fails, each process decides in memory until it answers again.
    #[arg(long, env = "RATE_LIMIT_STORE")]
    pub rate_limit_store: Option<String>,

    /// Refuse keys marked `priority=low` in --api-keys-file (429, Retry-After: the window's
    /// reset) while any of the Claude account's usage windows (from the CLI's rate-limit
    /// reports, subscription logins only) is used at or above this fraction, e.g. 0.9.
    #[arg(long, env = "QUOTA_LOW_PRIORITY_THRESHOLD", value_parser = fraction)]
    pub quota_low_priority_threshold: Option<f64>,

    /// Let clients on 127.0.0.1 / ::1 see the dashboard (/dashboard) and the operator
    /// endpoints it reads without logging in with an admin key.
    #[arg(long, env = "DASHBOARD_OPEN_ON_LOOPBACK", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub dashboard_open_on_loopback: bool,

    /// Overall time limit of one completion, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 600)]
    pub request_timeout_secs: u64,

    /// Model map overrides: a JSON object, a file holding one, or `id=cli_model,…`
    /// (an empty cli_model removes an id).
    #[arg(long, env = "MODEL_MAP", default_value = "")]
    pub model_map: String,

    /// How the CLI authenticates with Anthropic.
    #[arg(long, env = "CLAUDE_AUTH", value_enum, default_value_t = AuthMode::Auto)]
    pub auth: AuthMode,

    /// Retries the CLI makes on API errors (CLAUDE_CODE_MAX_RETRIES; the CLI's own default of
    /// 10 takes ~3 minutes to give up).
    #[arg(long, env = "CLAUDE_MAX_RETRIES", default_value_t = 2)]
    pub claude_max_retries: u32,

    /// Refuse (400) sampling parameters Claude cannot honour instead of ignoring them.
    #[arg(long, env = "STRICT_PARAMS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_params: bool,

    /// Where per-run private working directories are created [default: the system temp dir].
    #[arg(long, env = "WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Extra environment variables passed through to the CLI (comma-separated names).
    #[arg(long, env = "CLAUDE_PASS_ENV", value_delimiter = ',')]
    pub pass_env: Vec<String>,

    /// Largest request body (HTTP) or message (gRPC) accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest image or document accepted, in decoded bytes.
    #[arg(long, env = "MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_image_bytes: usize,

    /// Most images and documents accepted in one request, together.
    #[arg(long, env = "MAX_IMAGES", default_value_t = 20)]
    pub max_images: usize,

    /// Download `http(s)` image URLs (public addresses only, size and time limited); off, they
    /// are refused with a 400.
    #[arg(long, env = "FETCH_IMAGES", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub fetch_images: bool,

    /// Time limit of one image download, in seconds.
    #[arg(long, env = "FETCH_IMAGES_TIMEOUT_SECS", default_value_t = 10)]
    pub fetch_images_timeout_secs: u64,

    /// Let image downloads reach loopback and private addresses. For tests on one machine only:
    /// it opens the gateway to server-side request forgery.
    #[arg(long, env = "FETCH_IMAGES_ALLOW_PRIVATE", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub fetch_images_allow_private: bool,

    /// Most remote images fetched for one request; a request with more is refused (400)
    /// before any download.
    #[arg(long, env = "FETCH_IMAGES_MAX_COUNT", default_value_t = 8)]
    pub fetch_images_max_count: usize,

    /// Most bytes downloaded for one request's remote images together; past it the request is
    /// refused (400).
    #[arg(long, env = "FETCH_IMAGES_MAX_TOTAL_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub fetch_images_max_total_bytes: usize,

    /// Time limit of all of one request's image downloads together, in seconds.
    #[arg(long, env = "FETCH_IMAGES_TOTAL_TIMEOUT_SECS", default_value_t = 30)]
    pub fetch_images_total_timeout_secs: u64,

    /// Image downloads of one request in flight at once.
    #[arg(long, env = "FETCH_IMAGES_CONCURRENCY", default_value_t = 4)]
    pub fetch_images_concurrency: usize,

    /// Learn the concrete `claude-*` model ids behind the CLI's aliases at startup (one short
    /// process that answers `initialize` and exits, no API call), to list them in /v1/models.
    #[arg(long, env = "DISCOVER_MODELS", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub discover_models: bool,

    /// Warm processes kept per pooled model with no demand (0 turns the pool off, unless
    /// --pool-max-size is given) [default: up to 2, one per 4 GB of available memory: each idle
    /// `claude` process holds ~160–200 MB].
    #[arg(long, env = "POOL_SIZE")]
    pub pool_size: Option<usize>,

    /// Most warm processes per pooled model when recent demand asks for more (requests in the
    /// last 30 s × the measured boot time, twice over) [default: 4, or --pool-size if larger;
    /// 0 with --pool-size 0].
    #[arg(long, env = "POOL_MAX_SIZE")]
    pub pool_max_size: Option<usize>,

    /// Keep a stateless request's `claude` process after its turn: the next request of the
    /// same tenant and configuration reuses it (its conversation rewound to empty), and a
    /// request whose history extends the conversation it holds continues it in place.
    #[arg(long, env = "REUSE_PROCESSES", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub reuse_processes: bool,

    /// How long a reusable process is kept idle, in seconds.
    #[arg(long, env = "REUSE_IDLE_SECS", default_value_t = 120)]
    pub reuse_idle_secs: u64,

    /// How long a process stopped at a client's tool calls waits for the request bringing
    /// their results (which then continues it), in seconds; after that it is killed and the
    /// follow-up replays the history.
    #[arg(long, env = "TOOL_WAIT_SECS", default_value_t = 120)]
    pub tool_wait_secs: u64,

    /// `claude` processes booting at once (a cold start costs ~0.7 CPU-seconds); later starts
    /// wait their turn, first come first served (0: no limit) [default: the number of CPUs].
    #[arg(long, env = "MAX_STARTING")]
    pub max_starting: Option<usize>,

    /// CLI models kept warm (comma-separated aliases or ids). Requests for other models start
    /// a process on demand (or reuse one parked).
    #[arg(
        long,
        env = "POOL_MODELS",
        value_delimiter = ',',
        default_value = "sonnet,haiku"
    )]
    pub pool_models: Vec<String>,

    /// Idle warm processes older than this are replaced, in seconds.
    #[arg(long, env = "POOL_MAX_IDLE_SECS", default_value_t = 600)]
    pub pool_max_idle_secs: u64,

    /// Most `claude` processes alive at once: serving requests, warm in the pool and kept for
    /// sessions alike (idle ones are evicted, least recently used first, when a request needs
    /// the room) [default: one per 256 MB of available memory; each process holds ~200 MB].
    #[arg(long, env = "MAX_PROCESSES")]
    pub max_processes: Option<usize>,

    /// Requests that may wait for a free process or for their session's previous turn; beyond
    /// that, 429 with Retry-After [default: twice --max-processes].
    #[arg(long, env = "MAX_QUEUE")]
    pub max_queue: Option<usize>,

    /// How long a request may wait for a free process (or its session's turn) before a 503, in
    /// seconds.
    #[arg(long, env = "QUEUE_TIMEOUT_SECS", default_value_t = 30)]
    pub queue_timeout_secs: u64,

    /// Longest silence on the CLI's output before the request fails (504), in seconds.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 120)]
    pub idle_timeout_secs: u64,

    /// Retries of a run that failed before any output reached the client (spawn failure, the
    /// CLI exiting early, Anthropic overloaded); never once output has started.
    #[arg(long, env = "START_RETRIES", default_value_t = 2)]
    pub start_retries: u32,

    /// Most messages in one request.
    #[arg(long, env = "MAX_MESSAGES", default_value_t = 2000)]
    pub max_messages: usize,

    /// Largest prompt in one request, in tokens (counted with tiktoken's cl100k_base: an
    /// estimate of Claude's count).
    #[arg(long, env = "MAX_PROMPT_TOKENS", default_value_t = 1_000_000)]
    pub max_prompt_tokens: usize,

    /// Where sessions are stored: a directory (SQLite file `sessions.db` in it), `sqlite://PATH`,
    /// or `postgres://…` for a store shared by several replicas
    /// [default: $XDG_DATA_HOME/claude-gateway, or ~/.local/share/claude-gateway].
    #[arg(long, env = "SESSION_STORE")]
    pub session_store: Option<String>,

    /// Whether every completed request is recorded in the usage ledger (`GET /v1/usage`) and
    /// key budgets are enforced. The ledger lives in the `--usage-store`.
    #[arg(long, env = "USAGE_LEDGER", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub usage_ledger: bool,

    /// Where the usage ledger and the budgets set through the API are kept: a location as for
    /// `--session-store` [default: the session store; a `postgres://` one is shared by replicas].
    #[arg(long, env = "USAGE_STORE")]
    pub usage_store: Option<String>,

    /// Usage rows older than this are deleted, in days (0 keeps them).
    #[arg(long, env = "USAGE_RETENTION_DAYS", default_value_t = 90)]
    pub usage_retention_days: u64,

    /// Sessions idle longer than this expire (404, then purged), in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_ttl_secs: u64,

    /// Most sessions kept; beyond it the least recently used are purged.
    #[arg(long, env = "SESSION_MAX_COUNT", default_value_t = 100_000)]
    pub session_max_count: usize,

    /// Session processes kept alive between turns, so the next turn in a session continues the
    /// CLI's own conversation instead of replaying the stored history into a new process
    /// (0 turns it off).
    #[arg(long, env = "SESSION_PROCESSES", default_value_t = 8)]
    pub session_processes: usize,

    /// How long a session process waits for the session's next turn, in seconds.
    #[arg(long, env = "SESSION_PROCESS_IDLE_SECS", default_value_t = 300)]
    pub session_process_idle_secs: u64,

    /// How long in-flight requests may run on after SIGTERM/SIGINT, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// After SIGTERM/SIGINT, keep accepting requests this long with /health/ready answering 503,
    /// so load balancers stop sending new ones before the listeners close, in seconds.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,

    /// Log format on stderr. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OpenTelemetry collector to send traces to (e.g. http://127.0.0.1:4317 for gRPC,
    /// http://127.0.0.1:4318 for http/protobuf); traces are off without it.
    #[arg(long, env = "OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// How traces reach --otlp-endpoint.
    #[arg(long, env = "OTLP_PROTOCOL", value_enum, default_value_t = OtlpProtocol::Grpc)]
    pub otlp_protocol: OtlpProtocol,

    /// The `service.name` of the exported traces.
    #[arg(long, env = "OTLP_SERVICE_NAME", default_value = "claude-gateway")]
    pub otlp_service_name: String,
}

impl Config {
    /// Parses `args` (the program name first); flags may also follow the subcommand
    /// (`claude-gateway doctor --claude-bin ./claude`).
    pub fn try_parse_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Config::command()
            .mut_args(|a| if a.is_positional() { a } else { a.global(true) })
            .try_get_matches_from(args)?;
        Config::from_arg_matches(&matches)
    }

    /// Where traces go (`traces::init`).
    pub fn trace_config(&self) -> TraceConfig {
        TraceConfig {
            endpoint: self.otlp_endpoint.clone().filter(|e| !e.is_empty()),
            protocol: self.otlp_protocol,
            service_name: self.otlp_service_name.clone(),
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], self.port.unwrap_or(8000))))
    }

    /// Whether the CLI runs with `--bare` (API-key auth).
    pub fn bare(&self) -> Result<bool, String> {
        let has_key = std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.is_empty());
        match self.auth {
            AuthMode::Auto => Ok(has_key),
            AuthMode::ApiKey if has_key => Ok(true),
            AuthMode::ApiKey => Err("--auth api-key needs ANTHROPIC_API_KEY".into()),
            AuthMode::Login => Ok(false),
        }
    }

    /// Keys, roles, health visibility and the rate limit, for `access::Access::from_config`.
    pub fn access_config(&self) -> AccessConfig {
        AccessConfig {
            api_keys: self.api_keys.clone(),
            admin_api_keys: self.admin_api_keys.clone(),
            api_keys_file: self.api_keys_file.clone(),
            public_health: self.public_health,
            rate_limit_rpm: self.rate_limit_rpm,
            rate_limit_store: self.rate_limit_store.clone().filter(|url| !url.is_empty()),
            quota_low_priority_threshold: self.quota_low_priority_threshold,
            dashboard_open_on_loopback: self.dashboard_open_on_loopback,
        }
    }

    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        if self.request_timeout_secs == 0 {
            return Err("--request-timeout-secs must be at least 1".into());
        }
        Ok(EngineConfig {
            claude_bin: absolute_if_relative_path(&self.claude_bin),
            bare: self.bare()?,
            max_retries: self.claude_max_retries,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            validation: ValidationConfig {
                models: ModelMap::with_overrides(&self.model_map)?,
                strict_params: self.strict_params,
                max_image_bytes: self.max_image_bytes,
                max_images: self.max_images,
                remote_images: self.fetch_images,
                max_messages: self.max_messages,
                max_prompt_tokens: self.max_prompt_tokens,
            },
            work_root: self.work_dir.clone().unwrap_or_else(std::env::temp_dir),
            extra_env: self.pass_env.clone(),
            fetch: FetchConfig {
                enabled: self.fetch_images,
                timeout: Duration::from_secs(self.fetch_images_timeout_secs),
                max_bytes: self.max_image_bytes,
                allow_private: self.fetch_images_allow_private,
                budget: FetchBudget {
                    max_count: self.fetch_images_max_count,
                    max_total_bytes: self.fetch_images_max_total_bytes,
                    total_timeout: Duration::from_secs(self.fetch_images_total_timeout_secs),
                    concurrency: self.fetch_images_concurrency.max(1),
                },
            },
            pool: Some({
                let per_model = self.pool_size.unwrap_or_else(default_pool_size);
                PoolSettings {
                    models: self.pool_models.clone(),
                    per_model,
                    max_per_model: self.pool_max_size.unwrap_or(if per_model == 0 {
                        0
                    } else {
                        per_model.max(4)
                    }),
                    max_idle: Duration::from_secs(self.pool_max_idle_secs),
                }
            }),
            limits: self.limits(),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            start_retries: self.start_retries,
            park: ParkConfig {
                sessions: self.session_processes,
                session_idle: Duration::from_secs(self.session_process_idle_secs),
                reuse: self.reuse_processes,
                reuse_idle: Duration::from_secs(self.reuse_idle_secs),
                tool_wait: Duration::from_secs(self.tool_wait_secs),
            },
            max_starting: self.max_starting.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
            }),
            discover_models: self.discover_models,
        })
    }

    /// The gRPC server's TLS files, when it serves TLS.
    pub fn grpc_tls(&self) -> Option<ServerTlsFiles> {
        Some(ServerTlsFiles {
            cert: self.grpc_tls_cert.clone()?,
            key: self.grpc_tls_key.clone()?,
            client_ca: self.grpc_tls_client_ca.clone(),
        })
    }

    /// How to reach the `--upstream` worker at `url`.
    pub fn upstream_config(&self, url: &str) -> UpstreamConfig {
        let identity = self
            .upstream_tls_cert
            .clone()
            .zip(self.upstream_tls_key.clone());
        UpstreamConfig {
            url: url.to_string(),
            server_name: None,
            api_key: self.upstream_api_key.clone(),
            tls: ClientTlsFiles {
                ca: self.upstream_ca.clone(),
                identity,
            },
            insecure: self.upstream_insecure,
            connect_timeout: Duration::from_secs(self.upstream_connect_timeout_secs.max(1)),
            deadlines: Deadlines {
                call: Duration::from_secs(self.upstream_timeout_secs.max(1)),
                completion: Duration::from_secs(self.request_timeout_secs.max(1)),
            },
        }
    }

    /// The session store location, with the default data directory filled in.
    pub fn session_store(&self) -> String {
        if let Some(location) = &self.session_store {
            return location.clone();
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("claude-gateway").display().to_string()
    }

    /// The usage ledger's location (`--usage-store`, else the session store's), when it is on.
    pub fn usage_store(&self) -> Option<String> {
        self.usage_ledger.then(|| {
            self.usage_store
                .clone()
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| self.session_store())
        })
    }

    pub fn limits(&self) -> LimitConfig {
        let max_processes = self
            .max_processes
            .unwrap_or_else(|| (available_memory_kb() / (256 * 1024)).max(1) as usize)
            .max(1);
        LimitConfig {
            max_processes,
            max_queue: self.max_queue.unwrap_or(max_processes * 2),
            queue_timeout: Duration::from_secs(self.queue_timeout_secs),
        }
    }
}

/// Warm processes per model when not configured: one per 4 GB of available memory, at most 2.
fn default_pool_size() -> usize {
    ((available_memory_kb() / (4 * 1024 * 1024)) as usize).min(2)
}

/// MemAvailable from /proc/meminfo (0 when unknown).
fn available_memory_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// A relative path with a directory part (`./bin/claude`) is made absolute now: the CLI is
/// started inside its own working directory, where the relative path would mean something else.
/// A bare name (`claude`) stays a PATH lookup.
fn absolute_if_relative_path(bin: &std::path::Path) -> PathBuf {
    if bin.is_relative()
        && bin.components().count() > 1
        && let Ok(cwd) = std::env::current_dir()
    {
        return cwd.join(bin);
    }
    bin.to_path_buf()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

/// A fraction in (0, 1] (a utilization threshold).
fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "must be a fraction above 0 and at most 1 (like 0.9), not {v}"
        ))
    }
}
