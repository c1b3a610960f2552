// Passkeys with plain navigator.credentials: the browser's JSON helpers
// (WebAuthn Level 3) when it has them, a small base64url conversion when not.

function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function toBase64Url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list || []).map((c) => ({ ...c, id: fromBase64Url(c.id) }));
}

/** PublicKeyCredentialCreationOptions from their JSON form. */
export function creationOptions(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64Url(json.challenge),
    user: { ...json.user, id: fromBase64Url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

/** PublicKeyCredentialRequestOptions from their JSON form. */
export function requestOptions(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64Url(json.challenge),
    allowCredentials: descriptors(json.allowCredentials),
  };
}

/** A credential in its JSON form (RegistrationResponseJSON or AuthenticationResponseJSON). */
export function credentialJSON(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toBase64Url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64Url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    if (typeof r.getAuthenticatorData === "function") {
      response.authenticatorData = toBase64Url(r.getAuthenticatorData());
    }
    if (typeof r.getPublicKey === "function" && r.getPublicKey()) {
      response.publicKey = toBase64Url(r.getPublicKey());
    }
    if (typeof r.getPublicKeyAlgorithm === "function") {
      response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
    }
  } else {
    response.authenticatorData = toBase64Url(r.authenticatorData);
    response.signature = toBase64Url(r.signature);
    response.userHandle = r.userHandle ? toBase64Url(r.userHandle) : null;
  }
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: credential.type,
    response,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults:
      typeof credential.getClientExtensionResults === "function"
        ? credential.getClientExtensionResults()
        : {},
  };
}

function supported() {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    throw new Error("This browser cannot use passkeys.");
  }
}

function friendly(e) {
  if (e && e.name === "NotAllowedError") {
    return new Error("The passkey request was cancelled or timed out.");
  }
  if (e && e.name === "InvalidStateError") {
    return new Error("This device already holds a passkey for this account.");
  }
  return e;
}

/** Runs the registration ceremony on `optionsJSON`; answers the credential's JSON. */
export async function createPasskey(optionsJSON) {
  supported();
  try {
    const credential = await navigator.credentials.create({
      publicKey: creationOptions(optionsJSON),
    });
    return credentialJSON(credential);
  } catch (e) {
    throw friendly(e);
  }
}

/** Runs the authentication ceremony on `optionsJSON`; answers the credential's JSON. */
export async function getPasskey(optionsJSON) {
  supported();
  try {
    const credential = await navigator.credentials.get({
      publicKey: requestOptions(optionsJSON),
    });
    return credentialJSON(credential);
  } catch (e) {
    throw friendly(e);
  }
}
