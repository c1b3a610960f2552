// A redirect provider's callback page (`/callback/{provider}?code&state`):
// hands the query to the auth server's callback route, then lets the
// sign-in page go on with the answer (or, for a link started on the
// account page, goes back there).

import { ACTOR, LINKING_KEY, api, getToken, providerLabel, setNotice, showError } from "./api.js";
import { PENDING_KEY } from "./login.js";

async function run() {
  const provider = decodeURIComponent(window.location.pathname.split("/")[2] || "");
  const query = window.location.search;
  // The code is single-use: out of the address bar and the history.
  history.replaceState(null, "", window.location.pathname);
  const linking = sessionStorage.getItem(LINKING_KEY) === provider;
  sessionStorage.removeItem(LINKING_KEY);
  // A link needs the same account's token at both ends.
  const token = linking ? getToken() || undefined : undefined;
  const answer = await api(
    "GET",
    `/auth/${ACTOR}/${encodeURIComponent(provider)}/callback${query}`,
    { token },
  );
  if (linking) {
    // The link's token stays on this device: the account page keeps its own.
    setNotice(
      `${providerLabel({ id: provider, identifier: provider })} is linked: you can sign in with it too.`,
    );
    window.location.replace("/account");
    return;
  }
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(answer));
  window.location.replace("/");
}

run().catch((e) => {
  document.getElementById("callback-status").textContent = "That did not work.";
  document.getElementById("callback-back").hidden = false;
  showError(e);
});
