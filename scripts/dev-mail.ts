// The development mail catcher beside `make keycloak`: an SMTP server on 127.0.0.1:1025 (the
// realm's SMTP setting) that prints each mail's recipients, subject and links, so an invited
// admin's link can be opened from the terminal. Nothing is delivered anywhere.
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

const port = Number(process.env.DEV_MAIL_PORT ?? 1025);
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  size: 1024 * 1024,
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((mail) => {
        const links = (mail.text ?? '').match(/https?:\/\/\S+/g) ?? [];
        const to = session.envelope.rcptTo.map((recipient) => recipient.address).join(', ');
        process.stdout.write(`mail to ${to}: ${mail.subject ?? ''}\n${links.map((link) => `  ${link}\n`).join('')}`);
        callback();
      })
      .catch((error: Error) => callback(error));
  },
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`dev mail catcher on 127.0.0.1:${port}\n`));
