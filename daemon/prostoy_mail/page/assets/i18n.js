// The page's words: Russian first (the help page's own), English second. The language is the
// browser's (navigator.languages) until the user switches; the switch is remembered.

const RU = {
  title: "Почтовые шлюзы",
  org: "Моя организация",
  login: "Логин", password: "Пароль", signIn: "Войти", signOut: "Выйти",
  sessionEnded: "Сеанс закончился: войдите снова.",
  badLogin: "Неверный логин или пароль.",
  tabGateways: "Почтовые шлюзы", tabRules: "Правила", tabTasks: "Задачи",
  servers: "Почтовые серверы", hideUnused: "Скрыть сервера без почтовых ящиков",
  preset: "базовый", createServer: "Создать сервер", createGateway: "Создать шлюз", prostoy: "Prostoy.biz",
  edit: "Редактировать", remove: "Удалить", test: "Тест", save: "Сохранить", cancel: "Отмена", close: "Закрыть",
  confirmRemove: "Удалить «{name}»?",
  mailboxes: "Ящики на домене", mailboxLogin: "Логин почтового ящика", task: "задача", taskField: "Задача",
  noGateways: "нет подключённых ящиков", noMailboxes: "Ящиков на домене ещё нет: кнопка «Prostoy.biz» создаёт ящик.",
  serverName: "Название", incoming: "Сервер входящей почты", incomingProtocol: "Протокол",
  pop3Server: "POP3-сервер", imapServer: "IMAP-сервер", port: "Порт", smtpServer: "SMTP-сервер",
  verifyCertificate: "Проверять подлинность сертификата", useSsl: "Использовать SSL",
  security: "Безопасность", securityNone: "выключено", securitySsl: "SSL", securityTls: "TLS",
  server: "Сервер", email: "E-mail", sameSmtp: "Этот же логин и пароль для SMTP",
  smtpLogin: "Логин для SMTP", smtpPassword: "Пароль для SMTP",
  personal: "Личный ящик пользователя", employee: "Сотрудник",
  forwarding: "Пересылка активна", keepOnServer: "Не удалять сообщения с сервера",
  uploadSent: "Загружать исходящие письма на почтовый сервер",
  markRead: "Отмечать прочитанными входящие письма",
  deleteOnServer: "Удалять входящие письма с почтового сервера при удалении в программе",
  passwordAgain: "Новый сервер или логин: введите пароль снова.", passwordKept: "оставьте пустым, чтобы не менять",
  testing: "Проверка…", testOk: "Проверка пройдена", testFailed: "Проверка не пройдена",
  step_dns: "DNS", step_connect: "соединение", step_tls: "TLS", step_greeting: "приветствие сервера",
  step_login: "вход", step_list: "папки", step_select: "папка INBOX", step_auth: "вход", step_ehlo: "EHLO",
  step_starttls: "STARTTLS", step_settings: "настройки сервера",
  state_idle: "работает", state_error: "ошибка", state_auth_failed: "неверный пароль", state_none: "ещё не проверен",
  state_connecting: "подключение", state_parked: "приостановлен",
  rules: "Правила", createRule: "Создать правило", ruleName: "Название правила",
  scope: "Правило для", scopeGlobal: "Общее (все ящики)", scopeMailbox: "Ящик", scopeGateway: "Шлюз",
  subject: "Заголовок", senders: "Отправитель", recipients: "Получатель", listHint: "через запятую",
  actionComment: "Добавить комментарий", actionNewTask: "Создать задачу", actionIgnore: "Игнорировать сообщение",
  project: "Проект", assignTo: "Назначить", nobody: "никому",
  deleteAfter: "Удалить сообщение после обработки правила",
  stop: "Прекратить дальнейшую обработку правил для этого сообщения",
  editable: "Разрешить редактирование правила",
  up: "Выше", down: "Ниже", position: "№", conditions: "Условия", action: "Действие",
  dryRun: "Проверить правила на письме", paste: "Вставьте письмо целиком (заголовки и текст)",
  through: "Пришло через", anywhere: "любой ящик", check: "Проверить",
  matched: "подходит", notMatched: "не подходит", landsIn: "Попадёт в задачу", opens: "Откроет задачу",
  ignoredBy: "Игнорируется правилом", replyTo: "Ответ в задачу",
  tasks: "Задачи", comments: "Комментарии", noComments: "Писем пока нет.", from: "От", attachments: "Вложения",
  deleteComment: "Удалить комментарий", live: "новые письма появляются сами", older: "Ещё, раньше",
  language: "English", languageCode: "en",
  // problem types of the API (problem+json `type`), shown next to the field
  "problem-invalid": "Неверное значение", "problem-invalid-request": "Неверное значение",
  "problem-invalid-settings": "Настройки были бы неверны", "problem-conflict": "Противоречит тому, что уже есть",
  "problem-not-found": "Не найдено", "problem-over-limit": "Превышен лимит организации",
  "problem-forbidden": "Нет прав", "problem-file-managed": "Задано в файле настроек сервера",
  "problem-unauthenticated": "Нужно войти", "problem-login-blocked": "Слишком много неудачных попыток; подождите",
  "problem-internal": "Ошибка сервера", problem: "Ошибка",
};

const EN = {
  title: "Mail gateways",
  org: "My organisation",
  login: "Login", password: "Password", signIn: "Sign in", signOut: "Sign out",
  sessionEnded: "The session has ended: sign in again.",
  badLogin: "Wrong login or password.",
  tabGateways: "Mail gateways", tabRules: "Rules", tabTasks: "Tasks",
  servers: "Mail servers", hideUnused: "Hide servers without mailboxes",
  preset: "preset", createServer: "Create server", createGateway: "Create gateway", prostoy: "Prostoy.biz",
  edit: "Edit", remove: "Remove", test: "Test", save: "Save", cancel: "Cancel", close: "Close",
  confirmRemove: "Remove “{name}”?",
  mailboxes: "Mailboxes on the domain", mailboxLogin: "Mailbox login", task: "task", taskField: "Task",
  noGateways: "no mailboxes connected", noMailboxes: "No mailboxes on the domain yet: the “Prostoy.biz” button makes one.",
  serverName: "Name", incoming: "Incoming mail server", incomingProtocol: "Protocol",
  pop3Server: "POP3 server", imapServer: "IMAP server", port: "Port", smtpServer: "SMTP server",
  verifyCertificate: "Verify the certificate", useSsl: "Use SSL",
  security: "Security", securityNone: "off", securitySsl: "SSL", securityTls: "TLS",
  server: "Server", email: "E-mail", sameSmtp: "The same login and password for SMTP",
  smtpLogin: "SMTP login", smtpPassword: "SMTP password",
  personal: "A user's personal mailbox", employee: "Employee",
  forwarding: "Forwarding active", keepOnServer: "Do not delete messages from the server",
  uploadSent: "Upload sent mail to the mail server",
  markRead: "Mark incoming mail as read",
  deleteOnServer: "Delete incoming mail on the server when deleted here",
  passwordAgain: "A new server or login: enter the password again.", passwordKept: "leave empty to keep it",
  testing: "Testing…", testOk: "Test passed", testFailed: "Test failed",
  step_dns: "DNS", step_connect: "connection", step_tls: "TLS", step_greeting: "server greeting",
  step_login: "login", step_list: "folders", step_select: "INBOX", step_auth: "login", step_ehlo: "EHLO",
  step_starttls: "STARTTLS", step_settings: "server settings",
  state_idle: "working", state_error: "error", state_auth_failed: "wrong password", state_none: "not checked yet",
  state_connecting: "connecting", state_parked: "paused",
  rules: "Rules", createRule: "Create rule", ruleName: "Rule name",
  scope: "Rule for", scopeGlobal: "Global (every mailbox)", scopeMailbox: "Mailbox", scopeGateway: "Gateway",
  subject: "Subject", senders: "Sender", recipients: "Recipient", listHint: "comma-separated",
  actionComment: "Add a comment", actionNewTask: "Open a task", actionIgnore: "Ignore the message",
  project: "Project", assignTo: "Assign to", nobody: "nobody",
  deleteAfter: "Delete the message after this rule",
  stop: "Stop processing further rules for this message",
  editable: "Allow editing the rule",
  up: "Up", down: "Down", position: "#", conditions: "Conditions", action: "Action",
  dryRun: "Try the rules on a message", paste: "Paste a whole message (headers and text)",
  through: "Came through", anywhere: "any mailbox", check: "Check",
  matched: "matches", notMatched: "does not match", landsIn: "Lands in task", opens: "Opens a task",
  ignoredBy: "Ignored by rule", replyTo: "A reply to task",
  tasks: "Tasks", comments: "Comments", noComments: "No mail yet.", from: "From", attachments: "Attachments",
  deleteComment: "Delete the comment", live: "new mail appears by itself", older: "Older",
  language: "Русский", languageCode: "ru",
  "problem-invalid": "Invalid value", "problem-invalid-request": "Invalid value",
  "problem-invalid-settings": "The settings would not be valid", "problem-conflict": "Conflicts with what there is",
  "problem-not-found": "Not found", "problem-over-limit": "Over the organisation's limit",
  "problem-forbidden": "Not allowed", "problem-file-managed": "Set in the server's configuration file",
  "problem-unauthenticated": "Sign in first", "problem-login-blocked": "Too many failed logins; wait",
  "problem-internal": "Server error", problem: "Error",
};

const WORDS = { ru: RU, en: EN };

function chosen() {
  const saved = localStorage.getItem("prostoy-mail.lang");
  if (saved in WORDS) return saved;
  for (const lang of navigator.languages || [navigator.language || "ru"]) {
    const code = lang.slice(0, 2).toLowerCase();
    if (code in WORDS) return code;
  }
  return "ru";
}

export let lang = chosen();

export function setLang(code) {
  lang = code in WORDS ? code : "ru";
  localStorage.setItem("prostoy-mail.lang", lang);
  document.documentElement.lang = lang;
}

/** The word for `key` in the page's language, with {name}s filled from `values`. */
export function t(key, values = {}) {
  const text = WORDS[lang][key] ?? RU[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
