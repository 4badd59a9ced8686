//! Optional "Open in Graphistry" links: the architecture graph and the head
//! graph of a model uploaded to a Graphistry server through its REST API.
//!
//! The page stays offline; it only shows plain links to what was uploaded.
//! Nothing here runs unless the user asks (`--graphistry`) and gives
//! credentials in the environment. The flow is Graphistry's own: a JWT from
//! `/api-token-auth/` (username and password) or `/api/v2/auth/pkey/jwt/`
//! (personal key), then per graph `POST /api/v2/upload/datasets/` with the
//! bindings, and the edges and nodes as columnar JSON to
//! `/api/v2/upload/datasets/{id}/edges/json` and `/nodes/json`. Secrets live
//! only in [`Credentials`], whose `Debug` hides them, and in the request
//! headers and bodies.

use reqwest::blocking::{Client, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::report::{BehaviourSection, HeadSection, ModelReport};

/// The public Graphistry Hub.
pub const DEFAULT_SERVER: &str = "https://hub.graphistry.com";
/// Head pairs whose attention patterns are at least this similar (cosine)
/// become edges of the head graph.
pub const DEFAULT_HEAD_THRESHOLD: f32 = 0.75;

/// What `--graphistry` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Upload when credentials are in the environment; a failure is a
    /// warning and the page has no link.
    Auto,
    /// Upload or fail the build.
    Required,
}

/// An upload the build was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Mode,
    /// From the environment ([`Credentials::from_env`]).
    pub credentials: Option<Credentials>,
    /// See [`DEFAULT_HEAD_THRESHOLD`].
    pub head_threshold: f32,
}

/// How to log in.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `GRAPHISTRY_USERNAME` / `GRAPHISTRY_PASSWORD`.
    Password { username: String, password: String },
    /// `GRAPHISTRY_PERSONAL_KEY_ID` / `GRAPHISTRY_PERSONAL_KEY_SECRET`.
    PersonalKey { id: String, secret: String },
}

/// Where to upload and as whom.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Base URL, e.g. `https://hub.graphistry.com`.
    pub server: String,
    pub secret: Secret,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Secret::PersonalKey { id, .. } => f
                .debug_struct("PersonalKey")
                .field("id", id)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("secret", &self.secret)
            .finish()
    }
}

impl Credentials {
    /// The credentials in this process's environment, if any.
    pub fn from_env() -> Option<Credentials> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The credentials `var` (an environment lookup) gives: a personal key
    /// first, else a username and password; `None` when neither is
    /// complete. `GRAPHISTRY_SERVER` may omit the scheme (https is assumed).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let secret = match (
            var("GRAPHISTRY_PERSONAL_KEY_ID"),
            var("GRAPHISTRY_PERSONAL_KEY_SECRET"),
            var("GRAPHISTRY_USERNAME"),
            var("GRAPHISTRY_PASSWORD"),
        ) {
            (Some(id), Some(secret), _, _) => Secret::PersonalKey { id, secret },
            (_, _, Some(username), Some(password)) => Secret::Password { username, password },
            _ => return None,
        };
        let server = match var("GRAPHISTRY_SERVER") {
            Some(s) if s.contains("://") => s.trim_end_matches('/').to_owned(),
            Some(s) => format!("https://{}", s.trim_end_matches('/')),
            None => DEFAULT_SERVER.to_owned(),
        };
        Some(Credentials { server, secret })
    }
}

/// One uploaded graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The dataset id Graphistry gave.
    pub dataset: String,
    /// `{server}/graph/graph.html?dataset={id}&play=0` (`play=0` keeps the
    /// ggviz layout instead of running Graphistry's).
    pub url: String,
    pub nodes: usize,
    pub edges: usize,
}

/// The links a model page shows (the report's `graphistry` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    pub server: String,
    /// The architecture graph.
    pub architecture: Link,
    /// The head graph; absent without inference (no similarity).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heads: Option<Link>,
}

/// A failed upload, naming the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphistryError {
    /// The server answered a step with an error status.
    #[error("Graphistry: {step}: HTTP {status} from {url}{}", detail(.message))]
    Http {
        step: String,
        url: String,
        status: u16,
        message: String,
    },
    /// A step failed before a status came back.
    #[error("Graphistry: {step}: request to {url} failed")]
    Request {
        step: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer to a step is not what the API documents.
    #[error("Graphistry: {step}: unexpected answer from {url}: {reason}")]
    Response {
        step: String,
        url: String,
        reason: String,
    },
}

impl GraphistryError {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphistryError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// A graph ready to upload: columns of nodes and edges, and the bindings
/// that tell Graphistry which column is what.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// Column name → values, every column as long as the node count.
    pub nodes: Map<String, Value>,
    pub edges: Map<String, Value>,
    pub node_bindings: Value,
    pub edge_bindings: Value,
}

impl Dataset {
    fn len(columns: &Map<String, Value>) -> usize {
        columns
            .values()
            .next()
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        Self::len(&self.nodes)
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        Self::len(&self.edges)
    }
}

fn ints(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|&x| json!(x as i64)).collect())
}

fn floats(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|&x| json!(x)).collect())
}

/// The architecture graph: every node with its kind, layer, head, tensor,
/// type, bytes, parameters, PageRank and layout position, coloured by kind
/// (the index of the kind in Graphistry's categorical palette), and every
/// edge with its kind.
pub fn architecture_dataset(report: &ModelReport, name: &str) -> Dataset {
    let g = &report.graph;
    let n = g.nodes.count;
    let kind = g.nodes.kind.to_f64();
    let tensor = g.nodes.tensor.to_f64();
    let ty = g.nodes.ggml_type.to_f64();
    let pick = |i: f64, names: &dyn Fn(usize) -> Option<String>| {
        if i < 0.0 {
            Value::Null
        } else {
            names(i as usize).map_or(Value::Null, Value::String)
        }
    };
    let pagerank = g
        .metrics
        .iter()
        .find(|m| m.id == "pagerank")
        .map(|m| m.values.to_f64())
        .unwrap_or_else(|| vec![0.0; n]);
    let mut nodes = Map::new();
    nodes.insert("n".into(), json!((0..n).collect::<Vec<_>>()));
    nodes.insert("key".into(), json!(g.nodes.key));
    nodes.insert("label".into(), json!(g.nodes.label));
    nodes.insert(
        "kind".into(),
        Value::Array(
            kind.iter()
                .map(|&k| pick(k, &|i| g.kinds.get(i).map(|k| k.id.to_owned())))
                .collect(),
        ),
    );
    nodes.insert("color".into(), ints(&kind));
    nodes.insert("layer".into(), ints(&g.nodes.layer.to_f64()));
    nodes.insert("head".into(), ints(&g.nodes.head.to_f64()));
    nodes.insert(
        "tensor".into(),
        Value::Array(
            tensor
                .iter()
                .map(|&t| pick(t, &|i| report.tensors.name.get(i).cloned()))
                .collect(),
        ),
    );
    nodes.insert(
        "type".into(),
        Value::Array(
            ty.iter()
                .map(|&t| pick(t, &|i| report.types.get(i).map(|t| t.name.clone())))
                .collect(),
        ),
    );
    nodes.insert("bytes".into(), ints(&g.nodes.bytes.to_f64()));
    nodes.insert("params".into(), ints(&g.nodes.params.to_f64()));
    nodes.insert("pagerank".into(), floats(&pagerank));
    nodes.insert("x".into(), floats(&g.nodes.x.to_f64()));
    // Graphistry's y grows upward; the page's grows downward.
    let y: Vec<f64> = g.nodes.y.to_f64().iter().map(|y| -y).collect();
    nodes.insert("y".into(), floats(&y));

    let edge_kind = g.edges.kind.to_f64();
    let mut edges = Map::new();
    edges.insert("s".into(), ints(&g.edges.source.to_f64()));
    edges.insert("d".into(), ints(&g.edges.target.to_f64()));
    edges.insert(
        "kind".into(),
        Value::Array(
            edge_kind
                .iter()
                .map(|&k| pick(k, &|i| g.edge_kinds.get(i).map(|k| (*k).to_owned())))
                .collect(),
        ),
    );
    Dataset {
        name: format!("{name}: architecture"),
        nodes,
        edges,
        node_bindings: json!({
            "node": "n", "node_title": "label", "node_label": "key",
            "node_color": "color", "node_x": "x", "node_y": "y",
        }),
        edge_bindings: json!({"source": "s", "destination": "d"}),
    }
}

/// The head graph: one node per attention head (layer, head, cluster as
/// colour, placed on the plane of their attention patterns), one weighted
/// edge per pair of heads whose patterns' cosine similarity is at least
/// `threshold`. `None` when the report has no similarity matrix.
pub fn head_dataset(
    heads: &HeadSection,
    behaviour: &BehaviourSection,
    threshold: f32,
    name: &str,
) -> Option<Dataset> {
    let similarity = behaviour.similarity.as_ref()?.to_f64();
    let n = heads.count;
    if similarity.len() != n * n {
        return None;
    }
    let mut layer = Vec::with_capacity(n);
    let mut head = Vec::with_capacity(n);
    for (l, (&off, &nh)) in heads.offsets.iter().zip(&heads.n_head).enumerate() {
        for h in 0..nh {
            debug_assert_eq!(layer.len(), off as usize + h as usize);
            layer.push(l);
            head.push(h);
        }
    }
    if layer.len() != n {
        return None;
    }
    let cluster: Vec<f64> = behaviour
        .clusters
        .as_ref()
        .and_then(|c| c.partitions.iter().find(|p| p.k == c.k))
        .map(|p| p.labels.to_f64())
        .filter(|l| l.len() == n)
        .unwrap_or_else(|| vec![0.0; n]);
    let xy = behaviour
        .similarity_plane
        .as_ref()
        .map(|p| p.xy.to_f64())
        .filter(|xy| xy.len() == 2 * n);
    let mut nodes = Map::new();
    nodes.insert("n".into(), json!((0..n).collect::<Vec<_>>()));
    nodes.insert(
        "label".into(),
        json!(
            layer
                .iter()
                .zip(&head)
                .map(|(l, h)| format!("L{l}.H{h}"))
                .collect::<Vec<_>>()
        ),
    );
    nodes.insert("layer".into(), json!(layer));
    nodes.insert("head".into(), json!(head));
    nodes.insert("cluster".into(), ints(&cluster));
    let mut node_bindings = json!({
        "node": "n", "node_title": "label", "node_color": "cluster",
    });
    if let Some(xy) = xy {
        let x: Vec<f64> = xy.iter().step_by(2).copied().collect();
        let y: Vec<f64> = xy.iter().skip(1).step_by(2).copied().collect();
        nodes.insert("x".into(), floats(&x));
        nodes.insert("y".into(), floats(&y));
        node_bindings["node_x"] = json!("x");
        node_bindings["node_y"] = json!("y");
    }
    // The page stores round(255 · cosine).
    let cut = (f64::from(threshold.clamp(0.0, 1.0)) * 255.0).round();
    let (mut s, mut d, mut w) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for j in i + 1..n {
            let v = similarity[i * n + j];
            if v >= cut {
                s.push(i);
                d.push(j);
                w.push(v / 255.0);
            }
        }
    }
    let mut edges = Map::new();
    edges.insert("s".into(), json!(s));
    edges.insert("d".into(), json!(d));
    edges.insert("similarity".into(), floats(&w));
    Some(Dataset {
        name: format!("{name}: attention heads"),
        nodes,
        edges,
        node_bindings,
        edge_bindings: json!({
            "source": "s", "destination": "d", "edge_weight": "similarity",
        }),
    })
}

/// The link to a dataset on `server`.
pub fn dataset_url(server: &str, dataset: &str) -> String {
    format!("{server}/graph/graph.html?dataset={dataset}&play=0")
}

/// Uploads the model's architecture graph and, when the report has the
/// head similarity, its head graph; returns the links for the page.
pub fn upload(
    credentials: &Credentials,
    report: &ModelReport,
    head_threshold: f32,
) -> Result<Links, GraphistryError> {
    let name = &report.model.name;
    let arch = architecture_dataset(report, name);
    let heads = report
        .behaviour
        .as_ref()
        .and_then(|b| head_dataset(&report.heads, b, head_threshold, name));
    let session = Session::login(credentials)?;
    let architecture = session.upload(&arch)?;
    let heads = heads.map(|d| session.upload(&d)).transpose()?;
    Ok(Links {
        server: credentials.server.clone(),
        architecture,
        heads,
    })
}

/// A logged-in client.
struct Session<'a> {
    client: Client,
    server: &'a str,
    token: String,
}

impl<'a> Session<'a> {
    fn login(credentials: &'a Credentials) -> Result<Session<'a>, GraphistryError> {
        let server = credentials.server.as_str();
        let client = Client::builder()
            .user_agent(concat!("ggviz/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| GraphistryError::Request {
                step: "set up the HTTP client".into(),
                url: server.to_owned(),
                source,
            })?;
        let (url, request) = match &credentials.secret {
            Secret::Password { username, password } => {
                let url = format!("{server}/api-token-auth/");
                let body = json!({"username": username, "password": password});
                (url.clone(), client.post(url).json(&body))
            }
            Secret::PersonalKey { id, secret } => {
                let url = format!("{server}/api/v2/auth/pkey/jwt/");
                let auth = format!("PersonalKey {id}:{secret}");
                (url.clone(), client.get(url).header("Authorization", auth))
            }
        };
        let answer = send("log in", &url, request)?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| GraphistryError::Response {
                step: "log in".into(),
                url: url.clone(),
                reason: "no `token` in the answer".into(),
            })?
            .to_owned();
        Ok(Session {
            client,
            server,
            token,
        })
    }

    fn upload(&self, d: &Dataset) -> Result<Link, GraphistryError> {
        let server = self.server;
        let url = format!("{server}/api/v2/upload/datasets/");
        let body = json!({
            "name": d.name,
            "description": "uploaded by ggviz",
            "node_encodings": {"bindings": d.node_bindings},
            "edge_encodings": {"bindings": d.edge_bindings},
            "metadata": {"agent": "ggviz", "agentversion": env!("CARGO_PKG_VERSION")},
        });
        let step = format!("create the dataset `{}`", d.name);
        let answer = send(&step, &url, self.authed(self.client.post(&url)).json(&body))?;
        let dataset = answer
            .pointer("/data/dataset_id")
            .and_then(Value::as_str)
            .filter(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| GraphistryError::Response {
                step: step.clone(),
                url: url.clone(),
                reason: "no usable `data.dataset_id` in the answer".into(),
            })?
            .to_owned();
        for (part, columns) in [("edges", &d.edges), ("nodes", &d.nodes)] {
            let url = format!("{server}/api/v2/upload/datasets/{dataset}/{part}/json");
            let step = format!("upload the {part} of `{}`", d.name);
            send(
                &step,
                &url,
                self.authed(self.client.post(&url)).json(columns),
            )?;
        }
        Ok(Link {
            url: dataset_url(server, &dataset),
            dataset,
            nodes: d.node_count(),
            edges: d.edge_count(),
        })
    }

    fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(&self.token)
    }
}

/// Sends one step's request; an error status or `"success": false` is an
/// error naming the step.
fn send(step: &str, url: &str, request: RequestBuilder) -> Result<Value, GraphistryError> {
    let response = request.send().map_err(|source| GraphistryError::Request {
        step: step.to_owned(),
        url: url.to_owned(),
        source,
    })?;
    let status = response.status();
    let text = response.text().unwrap_or_default();
    if !status.is_success() {
        // The server's own words, short; never the request.
        let message: String = text.chars().take(200).collect();
        return Err(GraphistryError::Http {
            step: step.to_owned(),
            url: url.to_owned(),
            status: status.as_u16(),
            message: message.trim().to_owned(),
        });
    }
    let answer: Value = serde_json::from_str(&text).map_err(|e| GraphistryError::Response {
        step: step.to_owned(),
        url: url.to_owned(),
        reason: format!("not JSON ({e})"),
    })?;
    if answer.get("success") == Some(&Value::Bool(false)) {
        return Err(GraphistryError::Response {
            step: step.to_owned(),
            url: url.to_owned(),
            reason: "`success` is false".into(),
        });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn credentials_come_from_the_environment_and_stay_hidden() {
        assert_eq!(Credentials::from_vars(vars(&[])), None);
        assert_eq!(
            Credentials::from_vars(vars(&[("GRAPHISTRY_USERNAME", "u")])),
            None,
            "a username alone is not enough"
        );
        let c = Credentials::from_vars(vars(&[
            ("GRAPHISTRY_USERNAME", "u"),
            ("GRAPHISTRY_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        assert_eq!(c.server, DEFAULT_SERVER);
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Credentials::from_vars(vars(&[
            ("GRAPHISTRY_USERNAME", "u"),
            ("GRAPHISTRY_PASSWORD", "p"),
            ("GRAPHISTRY_PERSONAL_KEY_ID", "kid"),
            ("GRAPHISTRY_PERSONAL_KEY_SECRET", "ksecret"),
            ("GRAPHISTRY_SERVER", "graphistry.example.org/"),
        ]))
        .unwrap();
        assert_eq!(c.server, "https://graphistry.example.org");
        assert_eq!(
            c.secret,
            Secret::PersonalKey {
                id: "kid".into(),
                secret: "ksecret".into()
            }
        );
        assert!(!format!("{c:?}").contains("ksecret"));
    }

    #[test]
    fn links_keep_the_layout() {
        assert_eq!(
            dataset_url("https://hub.graphistry.com", "abc123"),
            "https://hub.graphistry.com/graph/graph.html?dataset=abc123&play=0"
        );
    }
}
