// What an invited admin does in a browser, done with fetch: open the link of Keycloak's mail,
// go through its pages (cookies kept, redirects followed by hand), and set a password on the
// "update password" form. Only Keycloak's own pages are walked; nothing outside its origin.

/** The first link in a mail body that goes to Keycloak's action-token endpoint. */
export function actionLinkIn(body: string): string {
  const match = /https?:\/\/[^\s"'<>]+\/login-actions\/action-token\?[^\s"'<>]+/.exec(body);
  if (!match) throw new Error('the mail holds no action link');
  return match[0].replace(/&amp;/g, '&');
}

const decode = (value: string) =>
  value.replace(/&amp;/g, '&').replace(/&#x3d;|&#61;/gi, '=').replace(/&quot;/g, '"').replace(/&#39;/g, "'");

/** Follows `link` and fills the password form(s) until Keycloak says the account is updated. */
export async function completeRequiredActions(link: string, password: string): Promise<void> {
  const origin = new URL(link).origin;
  const cookies = new Map<string, string>();
  const request = async (url: string, init: RequestInit = {}) => {
    if (new URL(url).origin !== origin) throw new Error(`the flow left Keycloak for ${url}`);
    const response = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const header of response.headers.getSetCookie()) {
      const [pair] = header.split(';');
      const at = pair!.indexOf('=');
      cookies.set(pair!.slice(0, at).trim(), pair!.slice(at + 1));
    }
    return response;
  };

  let response = await request(link);
  for (let step = 0; step < 12; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      response = await request(new URL(response.headers.get('location')!, origin).href);
      continue;
    }
    const page = await response.text();
    if (response.status !== 200) throw new Error(`Keycloak answered ${response.status} at step ${step}: ${page.slice(0, 300)}`);
    if (/account has been updated|Your account has been updated/i.test(page)) return;
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(page);
    if (form && /password-new/.test(form[2]!)) {
      response = await request(decode(form[1]!), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'password-new': password, 'password-confirm': password }).toString(),
      });
      continue;
    }
    // An information page ("perform the following actions ... click here to proceed").
    const proceed = /href="([^"]*login-actions\/[^"]+)"/i.exec(page);
    if (proceed) {
      response = await request(new URL(decode(proceed[1]!), origin).href);
      continue;
    }
    throw new Error(`no form or link to go on with at step ${step}: ${page.replace(/\s+/g, ' ').slice(0, 400)}`);
  }
  throw new Error('the required actions did not finish within 12 pages');
}
