//! The OpenAPI 3.1 document of every `/v1` route, derived from the handlers' `#[utoipa::path]`
//! attributes and their types; served at `/v1/openapi.json` and rendered at `/docs/api`.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{authorize, verify};

use super::{
    ErrorBody, ErrorDetail, import, keys, members, signing_keys, tenants, usage, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse API",
        description = "The key API (verify keys on every request) and the management API \
            (provision tenants, keys and members from the platform's backend). Errors are \
            {\"error\": {\"code\", \"message\", \"field\"?}}; lists are paged with limit \
            (at most 100) and cursor (next_cursor of the previous page); every POST takes an \
            Idempotency-Key; times are RFC 3339."
    ),
    paths(
        verify::verify_key,
        authorize::authorize,
        tenants::list_tenants,
        tenants::create_tenant,
        tenants::get_tenant,
        tenants::update_tenant,
        keys::list_keys,
        keys::create_key,
        keys::get_key,
        keys::update_key,
        keys::roll_key,
        keys::revoke_key,
        keys::whoami,
        import::import_keys,
        usage::read_usage,
        members::list_members,
        members::change_role,
        members::remove_member,
        members::list_invitations,
        members::create_invitation,
        members::revoke_invitation,
        members::list_audit_events,
        webhooks::list_webhooks,
        webhooks::create_webhook,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::send_test_event,
        webhooks::roll_webhook_secret,
        signing_keys::list_signing_keys,
        signing_keys::rotate_signing_keys,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "key API", description = "For the platform's servers and gateways, with a verifier token"),
        (name = "tenants", description = "Operator tokens"),
        (name = "keys", description = "keys:read, keys:write"),
        (name = "usage", description = "usage:read"),
        (name = "members", description = "members:read, members:write"),
        (name = "audit", description = "audit:read"),
        (name = "webhooks", description = "webhooks:read, webhooks:write"),
        (name = "tokens", description = "Access tokens: the keys that sign them (operator tokens)"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "operator_token",
            bearer("A token of GATEHOUSE_OPERATOR_TOKENS: the whole management API."),
        );
        components.add_security_scheme(
            "tenant_token",
            bearer(
                "A tenant management token (`<prefix>_mgmt_…`, made on the portal's API access \
                 page): its tenant only, within its scopes.",
            ),
        );
        components.add_security_scheme(
            "verifier_token",
            bearer("A token of GATEHOUSE_VERIFIER_TOKENS: the key API only."),
        );
        components.add_security_scheme(
            "gateway_verifier",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Gatehouse-Verifier",
                "A token of GATEHOUSE_VERIFIER_TOKENS, sent by the gateway (forward-auth).",
            ))),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_default())
}

/// `GET /v1/openapi.json`: public, cacheable for an hour.
pub async fn serve_document() -> Response {
    let mut response = document_json().to_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/keys/verify",
            "/v1/authorize",
            "/v1/tenants",
            "/v1/tenants/{tenant}",
            "/v1/tenants/{tenant}/keys",
            "/v1/tenants/{tenant}/keys/{key_id}",
            "/v1/tenants/{tenant}/keys/{key_id}/roll",
            "/v1/tenants/{tenant}/keys/{key_id}/revoke",
            "/v1/tenants/{tenant}/usage",
            "/v1/keys/whoami",
            "/v1/tenants/{tenant}/members",
            "/v1/tenants/{tenant}/members/{member_id}",
            "/v1/tenants/{tenant}/invitations",
            "/v1/tenants/{tenant}/invitations/{invitation_id}/revoke",
            "/v1/tenants/{tenant}/audit",
            "/v1/tenants/{tenant}/webhooks",
            "/v1/tenants/{tenant}/webhooks/{webhook_id}",
            "/v1/tenants/{tenant}/webhooks/{webhook_id}/test",
            "/v1/tenants/{tenant}/webhooks/{webhook_id}/roll_secret",
        ] {
            assert!(json["paths"].get(path).is_some(), "{path} is documented");
        }
        let schemes = &json["components"]["securitySchemes"];
        assert_eq!(schemes["operator_token"]["scheme"], "bearer");
    }
}
