// Client stubs for /chat.telefunc.py: exactly what the telefunc bundler transform generates.
import { __remoteTelefunctionCall } from 'telefunc/client'

export const whoami = (...args) => __remoteTelefunctionCall('/chat.telefunc.py', 'whoami', args)
export const send_message = (...args) => __remoteTelefunctionCall('/chat.telefunc.py', 'send_message', args)
export const last_messages = (...args) => __remoteTelefunctionCall('/chat.telefunc.py', 'last_messages', args)
