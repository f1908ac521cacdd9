import { defineHangupMatrix } from './helpers/cases.js'

defineHangupMatrix('h2-tls')
