# ruff: noqa: E501  (provider replies are kept verbatim, however long)
"""Realistic SMTP replies (as ``Response.to_single_line()`` renders them) and the class the
default rules give each. Provider texts are written from their published error pages and
commonly seen replies; IPs and addresses use documentation ranges."""

from __future__ import annotations

CASES = [
    # Gmail
    (
        "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser",
        "InvalidRecipient",
    ),
    (
        "550 5.2.1 The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser",
        "InactiveMailbox",
    ),
    (
        "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp",
        "QuotaIssues",
    ),
    (
        "450 4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time.",
        "QuotaIssues",
    ),
    ("552 5.2.3 Your message exceeded Google's message size limits.", "QuotaIssues"),
    (
        "550 5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
        "SpamContent",
    ),
    (
        "421 4.7.0 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.",
        "SpamBlock",
    ),
    (
        "421 4.7.28 [192.0.2.1] Gmail has detected an unusual rate of mail originating from your DKIM domain",
        "SpamBlock",
    ),
    (
        "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
        "AuthenticationFailed",
    ),
    (
        "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy. Please contact the administrator of example.com domain.",
        "AuthenticationFailed",
    ),
    (
        "421 4.7.32 Your email has been rate limited because the From: header (RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM organizational domain.",
        "AuthenticationFailed",
    ),
    (
        "550 5.7.25 [192.0.2.1] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not point to the sending IP.",
        "AuthenticationFailed",
    ),
    (
        "552 5.7.0 This message was blocked because its content presents a potential security issue.",
        "VirusRelated",
    ),
    (
        "550 5.7.1 The user or domain that you are sending to (or from) has a policy that prohibited the mail that you sent.",
        "PolicyRelated",
    ),
    (
        "553 5.1.2 We weren't able to find the recipient domain. Please check for any spelling errors, and make sure you didn't enter any spaces, periods, or other punctuation after the recipient's email address.",
        "BadDomain",
    ),
    ("452 4.5.3 Your message has too many recipients.", "TooManyRecipients"),
    ("421 4.3.0 Temporary System Problem.  Try again later.", "TransientFailure"),
    ("451 4.3.0 Mail server temporarily rejected message.", "TransientFailure"),
    # Yahoo / AOL
    (
        "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.ne1.yahoo.com",
        "InvalidRecipient",
    ),
    ("552 1 Requested mail action aborted, mailbox not found", "InvalidRecipient"),
    (
        "554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This mailbox is disabled (554.30). - mta1234.mail.ne1.yahoo.com",
        "InactiveMailbox",
    ),
    (
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        "SpamBlock",
    ),
    (
        "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
        "SpamBlock",
    ),
    (
        "550 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
        "SpamBlock",
    ),
    (
        "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
        "PolicyRelated",
    ),
    (
        "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.",
        "AuthenticationFailed",
    ),
    ("421 Max message per connection reached, closing transmission channel", "TransientFailure"),
    ("451 Message temporarily deferred - [160]", "TransientFailure"),
    ("554 5.7.1 :(HVU:B1) https://postmaster.aol.com/error-codes#554hvub1", "SpamBlock"),
    ("421 4.7.1 : (DYN:T1) https://postmaster.aol.com/error-codes#421dynt1", "SpamBlock"),
    ("521 5.2.1 : AOL will not accept delivery of this message.", "SpamBlock"),
    ("550 5.1.1 <someone@aol.com>: Recipient address rejected: aol.com", "InvalidRecipient"),
    # Outlook / Hotmail
    (
        "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [AM1EUR02FT001.eop-EUR02.prod.protection.outlook.com]",
        "InvalidRecipient",
    ),
    (
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DM6NAM11FT011.eop-nam11.prod.protection.outlook.com]",
        "InvalidRecipient",
    ),
    (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "InvalidRecipient",
    ),
    (
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
        "SpamBlock",
    ),
    (
        "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775)",
        "SpamBlock",
    ),
    (
        "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714) [BN1NAM02FT004.eop-nam02.prod.protection.outlook.com]",
        "TransientFailure",
    ),
    (
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/ and follow the directions.",
        "SpamBlock",
    ),
    (
        "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject.",
        "AuthenticationFailed",
    ),
    (
        "550 5.7.520 Access denied, Your organization does not allow external forwarding.",
        "PolicyRelated",
    ),
    (
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
        "SpamBlock",
    ),
    (
        "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
        "QuotaIssues",
    ),
    # Comcast
    ("550 5.1.1 <someone@comcast.net> Not our Customer", "InvalidRecipient"),
    (
        "554 5.7.1 <192.0.2.1> Comcast block for spam.  Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
        "SpamBlock",
    ),
    (
        "421 4.1.0 <192.0.2.1> Throttled - try again later. Please see http://postmaster.comcast.net/smtp-error-codes.php#RL000001",
        "TransientFailure",
    ),
    ("552 5.2.2 <someone@comcast.net> Mailbox is full", "QuotaIssues"),
    # Apple, Mimecast, Proofpoint, Spamhaus, Postfix/Exim/qmail defaults
    ("550 5.1.1 <someone@icloud.com>: user does not exist", "InvalidRecipient"),
    (
        "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
        "PolicyRelated",
    ),
    (
        "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550",
        "InvalidRecipient",
    ),
    ("554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1", "SpamBlock"),
    (
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1",
        "SpamBlock",
    ),
    ("550 5.7.1 Message rejected as spam by Content Filtering.", "SpamContent"),
    (
        "550 5.1.1 <someone@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
        "InvalidRecipient",
    ),
    ("550 No such user here", "InvalidRecipient"),
    ("550 Requested action not taken: mailbox unavailable", "InvalidRecipient"),
    (
        "553 5.1.3 The recipient address <someone> is not a valid RFC-5321 address.",
        "InvalidRecipient",
    ),
    (
        "450 4.1.2 <someone@nowhere.example>: Recipient address rejected: Domain not found",
        "BadDomain",
    ),
    ("550 5.1.10 Null MX: nowhere.example does not accept mail", "BadDomain"),
    ("450 4.1.8 <bounce@example.com>: Sender address rejected: Domain not found", "InvalidSender"),
    ("550 5.7.1 <bounce@example.com>: Sender address rejected: Access denied", "InvalidSender"),
    ("554 5.7.1 <someone@example.net>: Relay access denied", "RelayDenied"),
    ("550 5.7.1 relaying not permitted for 192.0.2.1:4321", "RelayDenied"),
    ("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "RelayDenied"),
    (
        "450 4.2.0 <someone@example.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.net.html",
        "TransientFailure",
    ),
    ("451 4.7.1 Greylisting in action, please come back later", "TransientFailure"),
    ("452 4.3.1 Insufficient system storage", "QuotaIssues"),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "QuotaIssues"),
    ("421 4.3.2 System not accepting network messages", "TransientFailure"),
    ("451 4.4.1 No answer from host", "NoAnswerFromHost"),
    ("421 4.4.2 mx.example.net Error: timeout exceeded", "BadConnection"),
    ("451 4.4.3 Temporary DNS failure, try again later", "DNSFailure"),
    (
        "450 4.4.3 Host or domain name not found. Name service error for name=example.net type=MX: Host not found, try again",
        "DNSFailure",
    ),
    ("554 5.4.6 Hop count exceeded - possible mail loop", "RoutingErrors"),
    ("550 5.4.4 Unable to route", "RoutingErrors"),
    (
        "551 5.4.7 Next delivery time would be at 2024-01-08 10:00:00 UTC which exceeds the expiry time 2024-01-08 09:00:00 UTC configured via set_scheduling",
        "MessageExpired",
    ),
    # The responses kumocore writes itself, in KumoMTA's words.
    (
        "551 5.4.7 Next delivery time would be 7days 1h after creation, which exceeds max_age=7days",
        "MessageExpired",
    ),
    (
        "400 KumoMTA internal: failed to connect to any candidate hosts: connect to mx1.example.com [192.0.2.1]:25: Timed Out waiting 60s for response to banner",
        "BadConnection",
    ),
    (
        "421 4.4.2 KumoMTA internal: failed to send message to mx1.example.com [192.0.2.1]: Timed Out waiting 60s to write MAIL FROM",
        "BadConnection",
    ),
    (
        "400 KumoMTA internal: failed to send message: Timed Out sending message payload data",
        "BadConnection",
    ),
    (
        "400 KumoMTA internal: failed to connect to any candidate hosts: connect to mx1.example.com [192.0.2.1]:25: connection failed: [Errno 111] Connect call failed ('192.0.2.1', 25)",
        "BadConnection",
    ),
    ("556 5.1.10 Recipient address has a null MX", "BadDomain"),
    ("451 4.4.4 MX didn't resolve to any hosts", "RoutingErrors"),
    ("500 5.5.1 Command unrecognized", "ProtocolErrors"),
    ("501 Syntax error in parameters or arguments", "ProtocolErrors"),
    ("554 5.6.0 Message contains invalid header", "ContentRelated"),
    ("550 5.7.1 Message rejected: virus found in attachment", "VirusRelated"),
    (
        "552 5.7.0 Our system detected an illegal attachment on your message.",
        "ProhibitedAttachment",
    ),
    (
        "550 5.7.23 The message was rejected because of Sender Policy Framework violation",
        "AuthenticationFailed",
    ),
    ("535 5.7.8 Authentication credentials invalid", "AuthenticationFailed"),
    ("550 5.2.1 Mailbox disabled, not accepting messages", "InactiveMailbox"),
    ("550 5.7.13 User account disabled", "InactiveMailbox"),
    ("250 2.0.0 Automatic reply: Out of Office", "AutoReply"),
    (
        "550 5.7.1 Your message is held by a challenge-response system; please verify that you are a human",
        "ChallengeResponse",
    ),
    ("451 4.3.5 Server configuration error", "BadConfiguration"),
    ("550 5.7.1 Message rejected: suspected spam", "SpamRelated"),
    ("421 4.7.0 mx.example.net Error: too many connections from 192.0.2.1", "TransientFailure"),
    (
        "550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
        "AuthenticationFailed",
    ),
    ("550 5.7.1 Delivery not authorized, message refused", "PolicyRelated"),
    ("550 5.7.38 some unclaimed security code", "PolicyRelated"),
    ("250 2.0.0 OK 1700000000 x1-20020a05", "Uncategorized"),
    ("550 computer says no", "Uncategorized"),
]
