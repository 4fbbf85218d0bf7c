//! The gRPC side of `Access`: a tower layer in front of every tonic service that reads the
//! `authorization` metadata and the peer address, refuses with UNAUTHENTICATED or
//! RESOURCE_EXHAUSTED carrying the gateway's error trailers (`grpc/error.rs`), and adds the
//! `x-ratelimit-*` metadata when a rate limit applies. A layer rather than a tonic interceptor:
//! one place covers every service, and it sees the method path to tell health from the API.
//!
//! An admitted call carries its `Tenant` in the request's extensions (tonic hands them to the
//! service as `Request::extensions()`): the key's tenant, or the one a façade names in
//! `x-gateway-tenant` when `Access::on_behalf_of` honours it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

use super::error::to_status;
use crate::access::{
    Access, Admitted, Protocol, Refusal, Route, TENANT_ADMIN_METADATA, TENANT_METADATA,
    write_budgets, write_quota,
};
use crate::chat::Tenant;
use crate::usage::Ledger;

/// `Server::builder().layer(AccessLayer::new(access, ledger))`.
#[derive(Clone)]
pub struct AccessLayer {
    access: Arc<Access>,
    ledger: Option<Arc<Ledger>>,
}

impl AccessLayer {
    /// With the usage `ledger`, an admitted call's answer also carries its tenant's
    /// `x-budget-*` metadata, as HTTP answers do.
    pub fn new(access: Arc<Access>, ledger: Option<Arc<Ledger>>) -> Self {
        AccessLayer { access, ledger }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            access: self.access.clone(),
            ledger: self.ledger.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessService<S> {
    inner: S,
    access: Arc<Access>,
    ledger: Option<Arc<Ledger>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<Request<Body>> for AccessService<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The service polled ready goes into the future; this one keeps a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access.clone();
        let ledger = self.ledger.clone();
        let call = Call::of(&request);
        Box::pin(async move {
            match call.admit(&access).await {
                Ok((Admitted { tenant, quota }, forwarded)) => {
                    if forwarded {
                        request.extensions_mut().insert(Forwarded);
                    }
                    let id = tenant.id().to_owned();
                    request.extensions_mut().insert(tenant);
                    let mut response = inner.call(request).await?;
                    write_quota(response.headers_mut(), quota.as_ref());
                    // A façade's call keeps its budgets at the façade. Sent with the response's
                    // head: a unary answer counts itself, a stream does not yet.
                    if let (Some(ledger), false, Route::Api) = (ledger, forwarded, call.route) {
                        write_budgets(response.headers_mut(), ledger.budget_headers(&id).await);
                    }
                    Ok(response)
                }
                Err(refusal) => {
                    tracing::info!(error = %refusal.error, "gRPC request refused");
                    let mut response = to_status(&refusal.error).into_http::<Body>();
                    write_quota(response.headers_mut(), refusal.quota.as_ref());
                    Ok(response)
                }
            }
        })
    }
}

/// Marks a call a façade made for its caller (an honoured `x-gateway-tenant`): the façade
/// keeps the usage ledger and the budgets of such calls (`RequestContext::forwarded`).
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// What the access decision reads of a call, taken out of it so the decision can wait (the
/// request's body is not `Sync`).
struct Call {
    route: Route,
    authorization: Option<String>,
    tenant: Option<String>,
    tenant_admin: Option<String>,
    peer: Option<std::net::IpAddr>,
}

impl Call {
    fn of(request: &Request<Body>) -> Self {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Call {
            route: Route::of_grpc_path(request.uri().path()),
            authorization: header("authorization"),
            tenant: header(TENANT_METADATA),
            tenant_admin: header(TENANT_ADMIN_METADATA),
            peer: request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|info| info.remote_addr)
                .map(|addr| addr.ip()),
        }
    }

    /// The access decision for one call, the tenant it acts for, and whether a façade named
    /// that tenant (`on_behalf_of` honoured the metadata: an admin key, or a gateway without
    /// keys).
    async fn admit(&self, access: &Access) -> Result<(Admitted, bool), Refusal> {
        let admitted = if access.is_open() {
            Admitted {
                tenant: Tenant::anonymous(),
                quota: None,
            }
        } else {
            let authorization = self.authorization.as_deref();
            access
                .admit(self.route, Protocol::Grpc, authorization, self.peer)
                .await?
        };
        let Admitted { tenant, quota } = admitted;
        let forwarded = self.tenant.is_some() && (tenant.is_admin() || !access.has_keys());
        match access.on_behalf_of(tenant, self.tenant.as_deref(), self.tenant_admin.as_deref()) {
            Ok(tenant) => Ok((Admitted { tenant, quota }, forwarded)),
            Err(error) => Err(Refusal { error, quota }),
        }
    }
}
