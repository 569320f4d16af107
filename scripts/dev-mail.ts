// The development mail catcher beside `make keycloak`: the tests' SMTP catcher on 127.0.0.1:1025
// (the realm's SMTP setting), printing each mail's recipients, subject and links so an invited
// admin's link can be opened from the terminal. Nothing is delivered anywhere.
import { startMailCatcher } from '../test/support/mail-catcher.js';

const port = Number(process.env.DEV_MAIL_PORT ?? 1025);
await startMailCatcher({
  port,
  onMail(mail) {
    const links = mail.text.match(/https?:\/\/\S+/g) ?? [];
    process.stdout.write(`mail to ${mail.to.join(', ')}: ${mail.subject}\n${links.map((link) => `  ${link}\n`).join('')}`);
  },
});
process.stdout.write(`dev mail catcher on 127.0.0.1:${port}\n`);
