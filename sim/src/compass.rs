//! The Compass / UCL connector's GraphQL endpoint: request decoding, validation against the
//! connector schema, authentication (one-time token or client certificate), and execution with
//! apollo-compiler's resolvers. Does not issue certificates itself (see `shared`).

use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::{Operation, OperationType};
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue};
use apollo_compiler::validation::Valid;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use crate::answers::{
    self, COMPASS_REVOKE_UNAUTHENTICATED, COMPASS_SIGN_UNAUTHENTICATED_PREFIX,
    COMPASS_UNAUTHENTICATED,
};
use crate::peer::{Peer, Role};
use crate::registry::Endpoint;
use crate::respond::{self, Body};
use crate::shared::{ErrorStyle, Gate, Shared, SignError};
use crate::subject::ExpectedSubject;
use crate::tokens::Protocol;

/// Where both listeners serve the GraphQL API.
pub(crate) const PATH: &str = "/connector/graphql";

/// The header that carries the one-time token on the token-secured listener.
pub const TOKEN_HEADER: &str = "Connector-Token";

/// The key algorithm the connector announces.
const KEY_ALGORITHM: &str = "rsa2048";

/// The project's copy of the connector's external schema.
pub(crate) const SCHEMA: &str = include_str!("schema.graphql");

#[derive(Deserialize)]
struct GraphQlRequest {
    query: String,
    #[serde(default)]
    variables: Option<JsonMap>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
}

/// A request that parsed and validated, with the operation it selects.
struct Parsed {
    document: Valid<ExecutableDocument>,
    operation_name: Option<String>,
    variables: JsonMap,
}

/// A request refused before execution, answered in GraphQL's error format.
struct Refusal {
    status: StatusCode,
    errors: Vec<GraphQLError>,
}

impl Refusal {
    fn one(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            errors: vec![plain_error(message)],
        }
    }

    fn into_response(self) -> Response<Body> {
        errors_response(self.status, self.errors)
    }
}

fn plain_error(message: impl Into<String>) -> GraphQLError {
    GraphQLError {
        message: message.into(),
        locations: Vec::new(),
        path: Vec::new(),
        extensions: JsonMap::new(),
    }
}

fn errors_response(status: StatusCode, errors: Vec<GraphQLError>) -> Response<Body> {
    respond::json(status, &serde_json::json!({"errors": errors, "data": null}))
}

impl Parsed {
    fn operation(&self) -> Result<&Operation, Refusal> {
        self.document
            .operations
            .get(self.operation_name.as_deref())
            .map(|op| op.as_ref())
            .map_err(|error| Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                errors: vec![error.to_graphql_error(&self.document.sources)],
            })
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        let Ok(operation) = self.operation() else {
            return vec![Endpoint::CompassInvalid];
        };
        let endpoints: Vec<Endpoint> = operation
            .root_fields(&self.document)
            .filter_map(|field| match field.name.as_str() {
                "configuration" => Some(Endpoint::CompassConfiguration),
                "signCertificateSigningRequest" => Some(Endpoint::CompassSign),
                "revokeCertificate" => Some(Endpoint::CompassRevoke),
                _ => None,
            })
            .collect();
        if endpoints.is_empty() {
            vec![Endpoint::Unknown]
        } else {
            endpoints
        }
    }
}

fn parse(shared: &Shared, method: &Method, body: &[u8]) -> Result<Parsed, Refusal> {
    if method != Method::POST {
        return Err(Refusal::one(
            StatusCode::METHOD_NOT_ALLOWED,
            "the connector accepts only POST requests",
        ));
    }
    // The position only: serde's message may quote the input, which may hold a CSR.
    let request: GraphQlRequest = serde_json::from_slice(body).map_err(|error| {
        Refusal::one(
            StatusCode::BAD_REQUEST,
            format!(
                "json body could not be decoded: {:?} error at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            ),
        )
    })?;
    let document =
        ExecutableDocument::parse_and_validate(&shared.schema, request.query, "request.graphql")
            .map_err(|invalid| Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                errors: invalid.errors.iter().map(|d| d.to_json()).collect(),
            })?;
    let parsed = Parsed {
        document,
        operation_name: request.operation_name,
        variables: request.variables.unwrap_or_default(),
    };
    parsed.operation()?;
    Ok(parsed)
}

/// Who is calling: a token's client, or the holder of a verified client certificate.
enum Caller {
    Token {
        client_id: String,
    },
    Certificate {
        common_name: String,
        fingerprint: String,
    },
}

impl Caller {
    fn client_id(&self) -> &str {
        match self {
            Caller::Token { client_id } => client_id,
            Caller::Certificate { common_name, .. } => common_name,
        }
    }
}

/// The Connector's answer when no identity reached it, as the operation's resolver words it.
/// Upstream, the gateway's hydrator drops the identity of a revoked certificate and of a
/// used, expired or unknown token alike: the Connector cannot tell them apart.
fn unauthenticated(endpoints: &[Endpoint]) -> Refusal {
    let message = if endpoints.contains(&Endpoint::CompassSign) {
        format!("{COMPASS_SIGN_UNAUTHENTICATED_PREFIX}{COMPASS_UNAUTHENTICATED}")
    } else if endpoints == [Endpoint::CompassRevoke] {
        COMPASS_REVOKE_UNAUTHENTICATED.to_owned()
    } else {
        COMPASS_UNAUTHENTICATED.to_owned()
    };
    Refusal::one(StatusCode::OK, message)
}

fn authenticate(
    shared: &Shared,
    role: Role,
    peer: Option<&Peer>,
    parts: &Parts,
    endpoints: &[Endpoint],
) -> Result<Caller, Refusal> {
    match (role, peer) {
        (Role::Mtls, Some(peer)) => {
            if shared.registry.is_revoked(&peer.fingerprint) {
                return Err(unauthenticated(endpoints));
            }
            Ok(Caller::Certificate {
                common_name: peer.common_name.clone(),
                fingerprint: peer.fingerprint.clone(),
            })
        }
        _ => {
            let Some(token) = parts
                .headers
                .get(TOKEN_HEADER)
                .and_then(|value| value.to_str().ok())
            else {
                return Err(unauthenticated(endpoints));
            };
            shared
                .tokens
                .burn(Protocol::Compass, token.trim())
                .map(|client_id| Caller::Token { client_id })
                .map_err(|error| {
                    tracing::info!(%error, "refused a token");
                    unauthenticated(endpoints)
                })
        }
    }
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    role: Role,
    peer: Option<&Peer>,
    parts: &Parts,
    body: Bytes,
) -> Response<Body> {
    let parsed = parse(shared, &parts.method, &body);
    let endpoints = match &parsed {
        Ok(parsed) => parsed.endpoints(),
        Err(_) => vec![Endpoint::CompassInvalid],
    };
    let malformed = match shared.gate(&endpoints, ErrorStyle::GraphQl).await {
        Gate::Answer(response) => return response,
        Gate::Proceed { malformed } => malformed,
    };
    if endpoints.contains(&Endpoint::CompassSign) {
        shared.prepare_signing().await;
    }
    let response =
        execute(shared, role, peer, parts, parsed).unwrap_or_else(Refusal::into_response);
    if malformed {
        respond::malformed(response).await
    } else {
        response
    }
}

fn execute(
    shared: &Shared,
    role: Role,
    peer: Option<&Peer>,
    parts: &Parts,
    parsed: Result<Parsed, Refusal>,
) -> Result<Response<Body>, Refusal> {
    // A wrong method is refused before authentication: no token is spent on it.
    let parsed = match parsed {
        Err(refusal) if refusal.status == StatusCode::METHOD_NOT_ALLOWED => return Err(refusal),
        parsed => parsed,
    };
    // The token is burned before the document is looked at: even a failing call uses it up.
    let endpoints = parsed.as_ref().map(Parsed::endpoints).unwrap_or_default();
    let caller = authenticate(shared, role, peer, parts, &endpoints)?;
    let parsed = parsed?;
    let operation = parsed.operation()?;
    let context = Context { shared, caller };
    let query = QueryRoot { context: &context };
    let mutation = MutationRoot { context: &context };
    let root: &dyn ObjectValue = match operation.operation_type {
        OperationType::Mutation => &mutation,
        OperationType::Query | OperationType::Subscription => &query,
    };
    let result = Execution::new(&shared.schema, &parsed.document)
        .operation(operation)
        .raw_variable_values(&parsed.variables)
        .execute_sync(root);
    match result {
        Ok(mut response) => {
            // gqlgen, upstream, sends a resolver's error as it is; apollo prefixes it.
            for error in &mut response.errors {
                if let Some(message) = error.message.strip_prefix("resolver error: ") {
                    error.message = message.to_owned();
                }
            }
            Ok(respond::json(StatusCode::OK, &response))
        }
        Err(error) => Err(Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: vec![error.to_graphql_error(&parsed.document.sources)],
        }),
    }
}

struct Context<'a> {
    shared: &'a Shared,
    caller: Caller,
}

struct QueryRoot<'a> {
    context: &'a Context<'a>,
}

struct MutationRoot<'a> {
    context: &'a Context<'a>,
}

impl ObjectValue for QueryRoot<'_> {
    fn type_name(&self) -> &str {
        "Query"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "configuration" => Ok(ResolvedValue::object(self.context.configuration())),
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

impl ObjectValue for MutationRoot<'_> {
    fn type_name(&self) -> &str {
        "Mutation"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "signCertificateSigningRequest" => {
                let csr = info
                    .arguments()
                    .get("csr")
                    .and_then(JsonValue::as_str)
                    .ok_or_else(|| field_error("the csr argument is missing"))?;
                self.context.sign(csr).map(ResolvedValue::object)
            }
            "revokeCertificate" => self.context.revoke().map(ResolvedValue::leaf),
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

fn field_error(message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
    }
}

impl Context<'_> {
    fn configuration(&self) -> Object {
        let client_id = self.caller.client_id();
        let token = self.shared.tokens.mint(Protocol::Compass, client_id);
        let subject = ExpectedSubject::new(client_id).announced();
        Object::new("Configuration")
            .object("token", Object::new("Token").leaf("token", token))
            .object(
                "certificateSigningRequestInfo",
                Object::new("CertificateSigningRequestInfo")
                    .leaf("subject", subject)
                    .leaf("keyAlgorithm", KEY_ALGORITHM),
            )
            .object(
                "managementPlaneInfo",
                Object::new("ManagementPlaneInfo")
                    .leaf("directorURL", self.shared.director_url().as_str())
                    .leaf(
                        "certificateSecuredConnectorURL",
                        self.shared.compass_mtls_url().as_str(),
                    ),
            )
    }

    fn sign(&self, csr: &str) -> Result<Object, FieldError> {
        let expected = ExpectedSubject::new(self.caller.client_id());
        let renewal = matches!(self.caller, Caller::Certificate { .. });
        let fields = self
            .shared
            .sign(csr, &expected, Protocol::Compass, renewal)
            .map_err(|error| match error {
                SignError::Csr(error) => {
                    field_error(answers::compass_csr(&error))
                }
                SignError::Issue(error) => {
                    tracing::error!(%error, "signing failed");
                    field_error(format!("Error while signing Certificate Signing Request: Error while creating certificate: {error}"))
                }
            })?;
        Ok(Object::new("CertificationResult")
            .leaf("certificateChain", fields.chain)
            .leaf("caCertificate", fields.ca)
            .leaf("clientCertificate", fields.client))
    }

    fn revoke(&self) -> Result<bool, FieldError> {
        match &self.caller {
            Caller::Certificate { fingerprint, .. } => {
                self.shared.registry.revoke(fingerprint);
                tracing::info!(%fingerprint, "revoked a client certificate");
                Ok(true)
            }
            // A token is no certificate identity: `AuthenticateCertificate()` fails.
            Caller::Token { .. } => Err(field_error(COMPASS_REVOKE_UNAUTHENTICATED)),
        }
    }
}

/// A GraphQL object whose fields are known values.
#[derive(Clone)]
struct Object {
    type_name: &'static str,
    fields: Vec<(&'static str, FieldValue)>,
}

#[derive(Clone)]
enum FieldValue {
    Leaf(JsonValue),
    Object(Object),
}

impl Object {
    fn new(type_name: &'static str) -> Self {
        Object {
            type_name,
            fields: Vec::new(),
        }
    }

    fn leaf(mut self, name: &'static str, value: impl Into<JsonValue>) -> Self {
        self.fields.push((name, FieldValue::Leaf(value.into())));
        self
    }

    fn object(mut self, name: &'static str, value: Object) -> Self {
        self.fields.push((name, FieldValue::Object(value)));
        self
    }
}

impl ObjectValue for Object {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match self
            .fields
            .iter()
            .find(|(name, _)| *name == info.field_name())
        {
            Some((_, FieldValue::Leaf(value))) => Ok(ResolvedValue::leaf(value.clone())),
            Some((_, FieldValue::Object(object))) => Ok(ResolvedValue::object(object.clone())),
            None => Err(self.unknown_field_error(info)),
        }
    }
}
