//! Calls to the identity provider: one client per provider instance, a
//! timeout on every call, no redirects followed, bounded answers.

use std::time::Duration;

use serde_json::Value;
use url::Url;

/// The largest answer read from an identity provider.
const MAX_BODY: usize = 1 << 20;

/// The user agent sent to identity providers (GitHub's API requires one).
const USER_AGENT: &str = concat!("auth-oauth/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

/// A failed call; its text names the URL's host and path, never a query.
#[derive(Debug)]
pub(crate) struct HttpError(pub(crate) String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

fn where_(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Http { client })
    }

    async fn read(mut res: reqwest::Response, url: &Url) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| HttpError(format!("{}: {}", where_(url), e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError(format!(
                    "{}: answer larger than {MAX_BODY} bytes",
                    where_(url)
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GETs `url` as JSON, with `bearer` as the access token if given; a
    /// non-2xx status is an error.
    pub(crate) async fn get_json(
        &self,
        url: &Url,
        bearer: Option<&str>,
        accept: &str,
    ) -> Result<Value, HttpError> {
        let mut req = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req
            .send()
            .await
            .map_err(|e| HttpError(format!("{}: {}", where_(url), e.without_url())))?;
        let status = res.status();
        let body = Self::read(res, url).await?;
        if !status.is_success() {
            return Err(HttpError(format!("{}: status {status}", where_(url))));
        }
        serde_json::from_slice(&body)
            .map_err(|e| HttpError(format!("{}: not JSON ({e})", where_(url))))
    }

    /// Sends an `oauth2` request (the code exchange).
    pub(crate) async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError(format!("bad token URL: {e}")))?;
        let mut req = self.client.request(parts.method, url.clone()).body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let res = req
            .send()
            .await
            .map_err(|e| HttpError(format!("{}: {}", where_(&url), e.without_url())))?;
        let mut builder = http::Response::builder().status(res.status());
        for (name, value) in res.headers() {
            builder = builder.header(name, value);
        }
        let body = Self::read(res, &url).await?;
        builder
            .body(body)
            .map_err(|e| HttpError(format!("{}: {e}", where_(&url))))
    }
}

/// The code exchange's HTTP client (a named type, so the future it answers
/// is `Send` for every borrow, as async providers need).
impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
