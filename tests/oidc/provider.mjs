// The real OpenID Connect provider (npm `oidc-provider`) the integration tests sign in against.
// Started by tests/it/oidc.rs with `node provider.mjs`; prints `issuer <url>` once it listens.
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS and POST_LOGOUT_REDIRECT_URIS (comma-separated).
//
// Any login name is accepted with any password (the development login form). The name decides
// the claims, so tests can ask for the accounts they need:
//   ada            sub "ada",            email ada@example.test, verified
//   unverified-bo  sub "unverified-bo",  email unverified-bo@example.test, NOT verified
//   eve~ada        sub "eve~ada",        email ada@example.test, verified (same email, other subject)
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const list = (name) => (process.env[name] || '').split(',').map((s) => s.trim()).filter(Boolean);

function claimsFor(id) {
  const base = id.includes('~') ? id.slice(id.indexOf('~') + 1) : id;
  return {
    sub: id,
    email: `${base}@example.test`,
    email_verified: !id.startsWith('unverified-'),
    name: base.charAt(0).toUpperCase() + base.slice(1),
  };
}

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const configuration = {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: list('REDIRECT_URIS'),
    post_logout_redirect_uris: list('POST_LOGOUT_REDIRECT_URIS'),
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { methods: ['S256'], required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scopes' claims in the ID token, as Keycloak, Google, Okta and Auth0 do.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsFor(id); } };
  },
};

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});

// Stop with the test process even if it could not kill us (stdin closes when it exits).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
