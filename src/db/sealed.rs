//! Every sealed column, read and written for rotating `GATEHOUSE_SECRET_KEY`: the webhook
//! endpoints' signing secrets and receivers' credentials, kept management API answers, and the
//! private keys that sign access tokens.

use sqlx::PgConnection;
use uuid::Uuid;

/// An endpoint's sealed values.
pub struct SealedEndpoint {
    pub webhook_endpoint_id: Uuid,
    pub tenant_id: Uuid,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub auth_sealed: Option<Vec<u8>>,
}

/// Every endpoint's sealed values, locked until the transaction ends.
pub async fn endpoints_for_update(db: &mut PgConnection) -> sqlx::Result<Vec<SealedEndpoint>> {
    sqlx::query_as!(
        SealedEndpoint,
        r#"SELECT webhook_endpoint_id, tenant_id, secret_sealed, previous_secret_sealed, auth_sealed
           FROM webhook_endpoint ORDER BY webhook_endpoint_id FOR UPDATE"#
    )
    .fetch_all(db)
    .await
}

pub async fn update_endpoint(db: &mut PgConnection, endpoint: &SealedEndpoint) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE webhook_endpoint
           SET secret_sealed = $2, previous_secret_sealed = $3, auth_sealed = $4
           WHERE webhook_endpoint_id = $1"#,
        endpoint.webhook_endpoint_id,
        endpoint.secret_sealed,
        endpoint.previous_secret_sealed,
        endpoint.auth_sealed,
    )
    .execute(db)
    .await
    .map(drop)
}

/// A kept management API answer that is sealed.
pub struct SealedAnswer {
    pub caller: String,
    pub idempotency_key: String,
    pub response: Vec<u8>,
}

/// Every sealed kept answer, locked until the transaction ends.
pub async fn answers_for_update(db: &mut PgConnection) -> sqlx::Result<Vec<SealedAnswer>> {
    sqlx::query_as!(
        SealedAnswer,
        r#"SELECT caller, idempotency_key, response AS "response!" FROM idempotency_key
           WHERE sealed AND response IS NOT NULL ORDER BY caller, idempotency_key FOR UPDATE"#
    )
    .fetch_all(db)
    .await
}

pub async fn update_answer(db: &mut PgConnection, answer: &SealedAnswer) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE idempotency_key SET response = $3 WHERE caller = $1 AND idempotency_key = $2"#,
        answer.caller,
        answer.idempotency_key,
        answer.response,
    )
    .execute(db)
    .await
    .map(drop)
}

/// A token signing key's sealed private key.
pub struct SealedSigningKey {
    pub kid: String,
    pub private_key_sealed: Vec<u8>,
}

/// Every token signing key's sealed private key, locked until the transaction ends.
pub async fn signing_keys_for_update(db: &mut PgConnection) -> sqlx::Result<Vec<SealedSigningKey>> {
    sqlx::query_as!(
        SealedSigningKey,
        r#"SELECT kid, private_key_sealed FROM token_signing_key ORDER BY kid FOR UPDATE"#
    )
    .fetch_all(db)
    .await
}

pub async fn update_signing_key(db: &mut PgConnection, key: &SealedSigningKey) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE token_signing_key SET private_key_sealed = $2 WHERE kid = $1"#,
        key.kid,
        key.private_key_sealed,
    )
    .execute(db)
    .await
    .map(drop)
}
