// Completes a password reset: the token from the e-mail's link
// (`/reset#token=…`, or `?token=…`) authorizes one password update.

import { ACTOR, api, dropToken, guarded, setNotice, showError } from "./api.js";

function tokenOfLink() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const query = new URLSearchParams(window.location.search);
  return fragment.get("token") || query.get("token") || "";
}

const params = new URLSearchParams(window.location.search);
const provider = params.get("provider") || "emailpass";
const token = tokenOfLink();
// The token leaves the address bar (and the history) at once.
if (window.location.hash || window.location.search) {
  history.replaceState(null, "", window.location.pathname);
}

const form = document.getElementById("reset-form");
if (!token) {
  showError("This link has no reset token. Ask for a new link on the sign-in page.");
} else {
  form.hidden = false;
  form.elements.password.focus();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(document.getElementById("reset-submit"), async () => {
      const password = form.elements.password.value;
      if (password !== form.elements.again.value) {
        throw new Error("The two passwords differ.");
      }
      await api("POST", `/auth/${ACTOR}/${encodeURIComponent(provider)}/update`, {
        token,
        body: { password },
      });
      form.reset();
      dropToken();
      setNotice("Your password was changed. Sign in with the new one.");
      window.location.assign("/");
    });
  });
}
